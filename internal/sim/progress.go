package sim

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
)

// loadLines are what each engine prints while it loads, in order: its
// real lines (its descriptor's Sim.LoadLines, the sources cited there), so
// gantry's progress reading is exercised end to end.
var loadLines = func() map[string][]string {
	out := map[string][]string{}
	for _, d := range engine.All() {
		if len(d.Sim.LoadLines) > 0 {
			out[d.Name] = d.Sim.LoadLines
		}
	}
	return out
}()

// printLoad writes the flavor's load lines to out, spread evenly over the
// load time, until the load is over or ctx is done.
func printLoad(ctx context.Context, flavor string, load time.Duration, out io.Writer) {
	lines := loadLines[flavor]
	if len(lines) == 0 || load <= 0 {
		return
	}
	began := time.Now()
	gap := load / time.Duration(len(lines)+1)
	for _, l := range lines {
		parts := strings.Split(l, "\r")
		for i, part := range parts {
			if !sleepCtx(ctx, gap/time.Duration(len(parts))) {
				return
			}
			end := "\r"
			if i == len(parts)-1 {
				end = "\n"
			}
			if strings.Contains(part, "%[") {
				part = fmt.Sprintf(part, os.Getpid(), time.Since(began).Seconds(), time.Now().Format(time.DateTime))
			}
			io.WriteString(out, part+end) //nolint:errcheck // the log is best effort
		}
	}
}

// lockedWriter serializes the logger's writes and printLoad's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

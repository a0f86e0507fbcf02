package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// progressView shows a starting model's progress on stderr: the load's
// phase as the engine's own lines tell it (checkpoint shards, CUDA graphs
// …), the estimate from the model's last load, else the engine's last log
// line. On a terminal it redraws one line with a bar; elsewhere it prints
// a line per phase.
type progressView struct {
	e         *env
	tty       bool
	began     time.Time
	lastShown string
	drawn     bool
}

func newProgressView(e *env) *progressView {
	return &progressView{e: e, tty: isTerminal(e.stderr), began: time.Now()}
}

// show draws m's progress if it is starting.
func (v *progressView) show(m status.ModelStatus) {
	if m.State != status.Starting {
		return
	}
	if !v.tty {
		if line := fmt.Sprintf("starting %s: %s", m.Name, m.LoadPhase()); line != v.lastShown {
			fmt.Fprintln(v.e.stderr, line)
			v.lastShown = line
		}
		return
	}
	line := fmt.Sprintf("starting %s: %s", m.Name, m.LoadText())
	if m.Progress == nil {
		line += fmt.Sprintf(" %s  %s", time.Since(v.began).Round(100*time.Millisecond), trunc(m.LastLogLine, 60))
	} else {
		line = progressBar(m.Progress.Percent, 20) + line
	}
	fmt.Fprintf(v.e.stderr, "\r\033[K%s", line)
	v.drawn = true
}

// clear removes the drawn line.
func (v *progressView) clear() {
	if v.drawn {
		fmt.Fprint(v.e.stderr, "\r\033[K")
		v.drawn = false
	}
}

// progressBar is a bar of width cells for percent (no bar when unknown).
func progressBar(percent, width int) string {
	if percent < 0 {
		return ""
	}
	n := min(percent, 100) * width / 100
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] "
}

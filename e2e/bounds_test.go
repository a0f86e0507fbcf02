package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// TestEngineLogStaysWithinItsSize: an engine that writes 80 MB of output
// as fast as it can (a Python warning loop, a CUDA assert storm) leaves no
// log file over the 20 MiB a file keeps: the engine's writes wake gantry,
// which rotates at the size (polling every 250 ms let one grow to 150 MB),
// and a rotated copy keeps the newest 20 MiB.
func TestEngineLogStaysWithinItsSize(t *testing.T) {
	home := t.TempDir()
	spam := filepath.Join(home, "spam.sh")
	os.WriteFile(spam, []byte(`#!/bin/sh
head -c 83886080 /dev/zero | tr '\0' x | fold -w 999
echo "spam done"
exec "$GANTRY" sim --port "$PORT" --model spam
`), 0o755)
	port := testbin.FreePort(t)
	d := startDaemon(t, fmt.Sprintf(`
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  spam:
    engine: command
    mode: always-on
    memory: 1GiB
    port: %d
    command: [%s]
    env: {GANTRY: %s, PORT: "%d"}
`, port, spam, testbin.Gantry(t), port))
	d.waitState("spam", "ready", 120*time.Second)
	files, _ := filepath.Glob(filepath.Join(d.home, "ai", "logs", "command", "spam.log*"))
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
		if st.Size() > 21<<20 {
			t.Errorf("%s is %d MiB, over the 20 MiB a log file keeps", filepath.Base(f), st.Size()>>20)
		}
	}
	if len(files) < 2 || total > 4*21<<20 {
		t.Errorf("%d log files, %d MiB in all", len(files), total>>20)
	}
	if out := d.logs("spam"); !strings.Contains(out, "spam done") {
		t.Errorf("the engine's last lines are not in its log:\n%.500s", out)
	}
}

// TestBodiesStayWithinMaxBodyTotal: twenty real 31 MB bodies at once —
// to a model and to its alias, whose name gantry rewrites — under
// max_body_total 256MiB, four times over: gantry's peak RSS stays within
// the cap and what it holds besides. Before, the pieces a body was read in
// were joined into a second copy (and an alias's rewrite a third), and the
// finished bodies waited for a GC that waits for the heap to double: 435
// MB, and 790 MB in four rounds.
func TestBodiesStayWithinMaxBodyTotal(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
max_body_total: 256MiB
models:
  m: {engine: sim, memory: 1GiB, mode: always-on, aliases: [alias]}
`)
	d.waitState("m", "ready", 30*time.Second)
	pid := d.cmd.Process.Pid
	base := procBytes(t, pid, "VmHWM")
	content := strings.Repeat("a", 31<<20)
	served := map[int]int{}
	for round, model := range []string{"alias", "m", "alias", "m"} {
		body := []byte(`{"model":"` + model + `","max_tokens":1,"messages":[{"role":"user","content":"` + content + `"}]}`)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Post(d.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Errorf("round %d: %v", round, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				served[resp.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	peak := procBytes(t, pid, "VmHWM")
	t.Logf("gantry's peak RSS %d MiB (%d MiB before); answers %v", peak>>20, base>>20, served)
	if peak-base > 256<<20+48<<20 {
		t.Errorf("gantry's RSS peaked %d MiB above its start under max_body_total 256MiB", (peak-base)>>20)
	}
	if served[200] < 4*4 || served[503]+served[200] != 80 {
		t.Errorf("answers %v: some bodies should be served, the rest told busy", served)
	}
}

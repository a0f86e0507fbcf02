package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ollamaTodayBin is the newest Ollama that builds here (v0.17.4), which
// ./test.sh builds from the Go module proxy beside v0.6.5.
func ollamaTodayBin(t *testing.T) string {
	t.Helper()
	return installed(t, "GANTRY_OLLAMA_TODAY", "Ollama v0.17.4")
}

// children are the live processes whose parent is pid, with their command
// lines.
func children(pid int) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscan(e.Name(), &p); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		var state string
		var ppid int
		if i < 0 || len(stat) < i+2 {
			continue
		}
		fmt.Sscan(string(stat[i+2:]), &state, &ppid)
		if ppid == pid && state != "Z" {
			cl, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out[p] = strings.ReplaceAll(string(cl), "\x00", " ")
		}
	}
	return out
}

// runnerOf is the pid of the runner today's `ollama serve` (pid) started
// for a loaded model: `ollama runner --ollama-engine …` or `ollama runner
// --model …`, on a port the server picks.
func runnerOf(t *testing.T, serve int) int {
	t.Helper()
	for p, cl := range children(serve) {
		if strings.Contains(cl, " runner ") {
			t.Logf("ollama serve %d runs its model in %d: %s", serve, p, cl)
			return p
		}
	}
	t.Fatalf("ollama serve (pid %d) has no runner child: %v", serve, children(serve))
	return 0
}

// TestOllamaToday runs today's Ollama under gantry: chat and stream, the
// sizes /api/ps reports used as the model's memory, and its runner — a
// child process on a port Ollama picks — gone after gantry's stop and after
// kill -9 of gantry and the next gantry's stop.
func TestOllamaToday(t *testing.T) {
	d := ollamaDaemonWith(t, ollamaTodayBin(t), "10m", "")
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo")); err != nil {
		t.Fatalf("chat: %v\n%s", err, d.logs("tiny"))
	}
	streamTiny(t, c)
	st := d.status().Model("tiny")
	if !strings.HasPrefix(st.MemorySource, "measured: the engine reports") || st.MemoryBytes <= 0 {
		t.Errorf("the size /api/ps reports is not the model's memory: %d bytes, %q", st.MemoryBytes, st.MemorySource)
	}

	t.Run("gantry stop leaves no runner", func(t *testing.T) {
		serve := d.pid("tiny")
		runner := runnerOf(t, serve)
		if out, code := d.gantry("stop", "tiny"); code != 0 {
			t.Fatalf("gantry stop: %s", out)
		}
		waitGone(t, "the runner", runner)
		waitGone(t, "ollama serve", serve)
	})

	t.Run("kill -9 of gantry, then the next gantry's stop, leave no runner", func(t *testing.T) {
		if _, err := c.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo")); err != nil {
			t.Fatal(err)
		}
		serve := d.pid("tiny")
		runner := runnerOf(t, serve)
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
		d2 := d.again()
		d2.waitState("tiny", "ready", 60*time.Second)
		c2 := d2.oai("")
		if _, err := c2.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo")); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
		serve2 := d2.pid("tiny")
		runner2 := runnerOf(t, serve2)
		t.Logf("after kill -9 of gantry: serve %d → %d (adopted: %v), runner %d → %d", serve, serve2, d2.status().Model("tiny").Adopted, runner, runner2)
		d2.stop()
		for _, p := range []int{runner, serve, runner2, serve2} {
			waitGone(t, fmt.Sprintf("pid %d", p), p)
		}
	})
}

func waitGone(t *testing.T, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("%s (pid %d) outlived the stop", what, pid)
	}
}

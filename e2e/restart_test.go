package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

const restartConfig = `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  big: {engine: sim, memory: 8GiB, mode: always-on, args: [--load-time, 3s, --model, e2e-restart-big]}
  small: {engine: sim, memory: 2GiB, args: [--model, e2e-restart-small, --tokens, "3"]}
`

// TestKill9GantryKeepsEngines: gantry dies by kill -9; its engines keep
// serving; the next gantry adopts them — no second load, no duplicate, no
// orphan — and serves them again.
func TestKill9GantryKeepsEngines(t *testing.T) {
	d := startDaemon(t, restartConfig)
	d.waitState("big", "ready", 20*time.Second)
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("small", "x")); err != nil {
		t.Fatal(err)
	}
	bigPID, smallPID := d.pid("big"), d.pid("small")
	for _, m := range d.status().Models {
		if m.Name == "big" && m.Starts != 1 {
			t.Fatalf("the first gantry counts %d starts of big, want 1", m.Starts)
		}
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	if !alive(bigPID) || !alive(smallPID) {
		t.Fatalf("engines died with gantry: big %v small %v", alive(bigPID), alive(smallPID))
	}
	d2 := d.again()
	d2.waitState("big", "ready", 20*time.Second)
	// Adopted, not loaded again: the new gantry started neither engine
	// (a start counts; an adoption does not).
	for _, m := range d2.status().Models {
		if (m.Name == "big" || m.Name == "small") && m.Starts != 0 {
			t.Errorf("%s was started %d times by the new gantry: loaded again", m.Name, m.Starts)
		}
	}
	if d2.pid("big") != bigPID || d2.pid("small") != smallPID {
		t.Errorf("pids big %d→%d small %d→%d: not adopted", bigPID, d2.pid("big"), smallPID, d2.pid("small"))
	}
	if st := d2.statusJSON(); !strings.Contains(st, `"adopted": true`) {
		t.Errorf("status does not say adopted:\n%s", st)
	}
	for _, m := range []string{"e2e-restart-big", "e2e-restart-small"} {
		if n := len(simPIDs(m)); n != 1 {
			t.Errorf("%d processes of %s", n, m)
		}
	}
	c2 := d2.oai("")
	if _, err := c2.Chat.Completions.New(context.Background(), chatParams("small", "x")); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	// An adopted engine is stopped like any other: with its group.
	d2.stop()
	for _, p := range []int{bigPID, smallPID} {
		if alive(p) {
			t.Errorf("pid %d outlived gantry's stop", p)
		}
	}
}

// TestLeftoversAreCleanedUp: an engine whose config changed while gantry
// was down is not adopted but stopped, and started afresh.
func TestLeftoversAreCleanedUp(t *testing.T) {
	d := startDaemon(t, restartConfig)
	d.waitState("big", "ready", 20*time.Second)
	bigPID := d.pid("big")
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	b, _ := os.ReadFile(d.config)
	os.WriteFile(d.config, []byte(strings.Replace(string(b), "3s", "100ms", 1)), 0o644)
	d2 := d.again()
	d2.waitState("big", "ready", 20*time.Second)
	if alive(bigPID) {
		t.Errorf("the old engine (pid %d) with the old config still runs", bigPID)
	}
	if n := len(simPIDs("e2e-restart-big")); n != 1 {
		t.Errorf("%d processes of big", n)
	}
}

// TestUSR2LeavesEnginesForTheNextGantry: the upgrade path.
func TestUSR2LeavesEnginesForTheNextGantry(t *testing.T) {
	d := startDaemon(t, restartConfig)
	d.waitState("big", "ready", 20*time.Second)
	bigPID := d.pid("big")
	d.cmd.Process.Signal(syscall.SIGUSR2)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatal("gantry did not exit on SIGUSR2")
	}
	if !alive(bigPID) {
		t.Fatal("SIGUSR2 stopped the engine")
	}
	d2 := d.again()
	d2.waitState("big", "ready", 20*time.Second)
	if d2.pid("big") != bigPID {
		t.Errorf("not adopted: %d → %d", bigPID, d2.pid("big"))
	}
}

// TestKill9DuringLoadAdoptsTheLoad: gantry dies while an engine loads; the
// engine was recorded before it ran, so the next gantry finds it, waits
// for the same load instead of starting a second engine on its port.
func TestKill9DuringLoadAdoptsTheLoad(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  slow: {engine: sim, memory: 8GiB, mode: always-on, args: [--load-time, 4s, --model, e2e-restart-slow]}
`)
	deadline := time.Now().Add(10 * time.Second)
	for d.pid("slow") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	pid := d.pid("slow")
	if pid == 0 {
		t.Fatalf("no engine pid while loading: %s", d.statusJSON())
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d2 := d.again()
	d2.waitState("slow", "ready", 20*time.Second)
	st := d2.status().Model("slow")
	if st.PID != pid || !st.Adopted {
		t.Errorf("pid %d (was %d), adopted %v: the load was not adopted", st.PID, pid, st.Adopted)
	}
	if n := len(simPIDs("e2e-restart-slow")); n != 1 {
		t.Errorf("%d engines of slow run", n)
	}
	if strings.Contains(d2.logs("slow"), "address already in use") {
		t.Errorf("a second engine was started on the port:\n%s", d2.logs("slow"))
	}
}

// TestRewrittenCommandLineIsAdopted: an engine whose command line is not
// the argv gantry wrote (a shell wrapper that execs the server, as Python
// entry points and shebang scripts also do) is still known by its
// identity: adopted after kill -9 of gantry, and stopped with gantry.
func TestRewrittenCommandLineIsAdopted(t *testing.T) {
	gantry := testbin.Gantry(t)
	port := testbin.FreePort(t)
	d := startDaemon(t, fmt.Sprintf(`
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  wrapped:
    engine: command
    mode: always-on
    memory: 1GiB
    port: %d
    command: [sh, -c, "exec %s sim --port %d --model e2e-restart-wrapped"]
`, port, gantry, port))
	d.waitState("wrapped", "ready", 20*time.Second)
	pid := d.pid("wrapped")
	if cl := testbin.Cmdline(pid); len(cl) > 0 && cl[0] == "sh" {
		t.Fatalf("the wrapper did not exec: %v", cl)
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d2 := d.again()
	d2.waitState("wrapped", "ready", 20*time.Second)
	if st := d2.status().Model("wrapped"); st.PID != pid || !st.Adopted {
		t.Errorf("pid %d (was %d), adopted %v", st.PID, pid, st.Adopted)
	}
	d2.stop()
	if alive(pid) {
		t.Errorf("the adopted engine (pid %d) outlived gantry's stop", pid)
	}
}

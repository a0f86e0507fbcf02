package e2e

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
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
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	if !alive(bigPID) || !alive(smallPID) {
		t.Fatalf("engines died with gantry: big %v small %v", alive(bigPID), alive(smallPID))
	}
	began := time.Now()
	d2 := d.again()
	d2.waitState("big", "ready", 20*time.Second)
	if took := time.Since(began); took > 2500*time.Millisecond {
		t.Errorf("big was ready %s after the restart: loaded again?", took)
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

package supervise

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// Kill ends a ready engine as a crash: failed, the reason in its log, and
// restarted when the model restarts.
func TestKillIsACrash(t *testing.T) {
	p, events := newSim(t, "    args: [--load-time, 50ms]\n", Options{Restart: true, BackoffMin: 50 * time.Millisecond})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := p.Status().PID
	p.Kill("rank 1 on spark2 died")
	ev := waitEvent(t, events, status.Failed, 10*time.Second)
	if !strings.Contains(ev.Reason, "restarting in") {
		t.Errorf("failed without a restart: %q", ev.Reason)
	}
	if !strings.Contains(readFile(t, p.Log().Path()), "killed by gantry: rank 1 on spark2 died") {
		t.Errorf("the log does not say why:\n%s", readFile(t, p.Log().Path()))
	}
	waitEvent(t, events, status.Ready, 10*time.Second)
	if p.Status().PID == pid {
		t.Error("the same process is ready again")
	}
	p.Kill("ignored") // harmless on a stopped engine too, after Stop
	p.Stop(context.Background())
	p.Kill("nothing runs")
	if st := p.Status().State; st != status.Stopped {
		t.Errorf("state %s after Kill of a stopped engine", st)
	}
}

// A Prepare that fails fails the start, launches nothing, and is tried
// again on the restart.
func TestPrepareErrorFailsTheStart(t *testing.T) {
	tries := 0
	opts := Options{Restart: true, BackoffMin: 50 * time.Millisecond,
		Prepare: func(context.Context) error {
			tries++
			if tries == 1 {
				return errors.New("rank 1 on spark2 could not start: peer spark2 is down")
			}
			return nil
		}}
	p, events := newSim(t, "    args: [--load-time, 50ms]\n", opts)
	err := p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "peer spark2 is down") {
		t.Fatalf("start: %v", err)
	}
	ev := waitEvent(t, events, status.Failed, 5*time.Second)
	if !strings.Contains(ev.Reason, "could not start") {
		t.Errorf("failed because %q", ev.Reason)
	}
	waitEvent(t, events, status.Ready, 10*time.Second)
	if tries != 2 {
		t.Errorf("prepared %d times, want 2", tries)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package supervise

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/testbin"
)

// newSim supervises a real `gantry sim` process with the given sim args.
func newSim(t *testing.T, yamlModel string, opts Options) (*Process, chan Event) {
	t.Helper()
	root := t.TempDir()
	port := testbin.FreePort(t)
	src := fmt.Sprintf("root: %s\nmodels:\n  m:\n    engine: sim\n    memory: 1GiB\n    port: %d\n%s", root, port, yamlModel)
	c, err := config.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Models["m"]
	l, err := launch.Build(m, launch.Host{Config: c, Self: testbin.Gantry(t)}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan Event, 100)
	opts.OnEvent = func(ev Event) { events <- ev }
	p, err := New(m, l, c.LogPath(m), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p, events
}

// waitEvent waits for an event into state to, failing after timeout.
func waitEvent(t *testing.T, events chan Event, to status.State, timeout time.Duration) Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-events:
			if ev.To == to {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event into %s within %s", to, timeout)
		}
	}
}

func TestReadyAfterLoadTime(t *testing.T) {
	p, _ := newSim(t, "    args: [--flavor, sglang, --load-time, 400ms]\n", Options{})
	began := time.Now()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 400*time.Millisecond {
		t.Errorf("ready after %s, before the load time of 400ms", d)
	}
	st := p.Status()
	if st.State != status.Ready || st.PID == 0 || st.Starts != 1 {
		t.Errorf("status %+v", st)
	}
	resp, err := http.Get(p.Launch().BaseURL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health %d", resp.StatusCode)
	}
	// A second Start on a ready engine returns at once and starts nothing.
	if err := p.Start(context.Background()); err != nil || p.Status().Starts != 1 {
		t.Errorf("second start: %v, starts %d", err, p.Status().Starts)
	}
	if _, err := os.Stat(p.Log().Path()); err != nil {
		t.Errorf("log file: %v", err)
	}
	if !strings.Contains(strings.Join(p.Log().Tail(50), "\n"), "sim: ready at") {
		t.Errorf("log has no ready line: %q", p.Log().Tail(50))
	}
}

func TestConcurrentStartsLaunchOnce(t *testing.T) {
	p, _ := newSim(t, "    args: [--load-time, 300ms]\n", Options{})
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func() { errs <- p.Start(context.Background()) }()
	}
	for i := 0; i < 20; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Status().Starts; n != 1 {
		t.Errorf("20 concurrent starts launched %d engines", n)
	}
}

func TestHangLoadFailsAtStartTimeout(t *testing.T) {
	p, _ := newSim(t, "    start_timeout: 800ms\n    args: [--hang-load, --flavor, llamacpp]\n", Options{})
	began := time.Now()
	err := p.Start(context.Background())
	if err == nil {
		t.Fatal("a sim that never loads became ready")
	}
	if !strings.Contains(err.Error(), "start_timeout") || !strings.Contains(err.Error(), "Loading model") {
		t.Errorf("error does not say why: %v", err)
	}
	if d := time.Since(began); d < 800*time.Millisecond {
		t.Errorf("failed after %s, before start_timeout", d)
	}
	st := p.Status()
	if st.State != status.Failed {
		t.Errorf("state %s, want failed", st.State)
	}
	assertGone(t, p)
}

func TestExitDuringStartSaysWhy(t *testing.T) {
	p, _ := newSim(t, "    args: [--flavor, nonsense]\n", Options{})
	err := p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited while starting") || !strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("want an exit error naming the bad flag, got %v", err)
	}
}

func TestCrashedAlwaysOnRestartsWithBackoff(t *testing.T) {
	p, events := newSim(t, "    mode: always-on\n    args: [--crash-after, 1]\n",
		Options{Restart: true, BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	crash := func() {
		resp, err := http.Post(p.Launch().BaseURL+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"x"}`))
		if err == nil {
			resp.Body.Close()
		}
	}
	var backoffs []string
	re := regexp.MustCompile(`restarting in (\S+)`)
	for i := 0; i < 2; i++ {
		crash()
		ev := waitEvent(t, events, status.Failed, 10*time.Second)
		m := re.FindStringSubmatch(ev.Reason)
		if m == nil || !strings.Contains(ev.Reason, "exit status 3") {
			t.Fatalf("failure reason %q does not name the exit and the backoff", ev.Reason)
		}
		backoffs = append(backoffs, m[1])
		waitEvent(t, events, status.Ready, 10*time.Second)
	}
	if backoffs[0] != "200ms" || backoffs[1] != "400ms" {
		t.Errorf("backoffs %v, want [200ms 400ms]", backoffs)
	}
	if n := p.Status().Starts; n != 3 {
		t.Errorf("starts %d, want 3", n)
	}
}

func TestStopKillsWholeGroup(t *testing.T) {
	p, _ := newSim(t, "    stop_timeout: 500ms\n    args: [--spawn-child, --ignore-sigterm]\n", Options{})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	leader := p.Status().PID
	child := 0
	re := regexp.MustCompile(`spawned child pid (\d+)`)
	for _, l := range p.Log().Tail(50) {
		if m := re.FindStringSubmatch(l); m != nil {
			child, _ = strconv.Atoi(m[1])
		}
	}
	if child == 0 {
		t.Fatalf("no child pid in log: %q", p.Log().Tail(50))
	}
	began := time.Now()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 500*time.Millisecond {
		t.Errorf("an engine ignoring SIGTERM stopped after %s, before stop_timeout", d)
	}
	for _, pid := range []int{leader, child} {
		if alive(pid) {
			t.Errorf("pid %d survived the stop", pid)
		}
	}
	if st := p.Status(); st.State != status.Stopped || st.PID != 0 {
		t.Errorf("status after stop %+v", st)
	}
	if len(GroupMembers(leader)) != 0 {
		t.Errorf("group %d still has members %v", leader, GroupMembers(leader))
	}
}

func TestGracefulStopIsQuick(t *testing.T) {
	p, _ := newSim(t, "    stop_timeout: 10s\n", Options{})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("an engine that honours SIGTERM took %s to stop", d)
	}
	if !strings.Contains(strings.Join(p.Log().Tail(10), "\n"), "sim: stopped") {
		t.Errorf("sim did not shut down gracefully: %q", p.Log().Tail(10))
	}
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	state, _, _ := parseStat(string(b))
	return state != "Z"
}

// assertGone checks that the process group recorded in the log is gone.
func assertGone(t *testing.T, p *Process) {
	t.Helper()
	re := regexp.MustCompile(`\[gantry\] pid (\d+)`)
	pid := 0
	for _, l := range p.Log().Tail(100) {
		if m := re.FindStringSubmatch(l); m != nil {
			pid, _ = strconv.Atoi(m[1])
		}
	}
	if pid == 0 {
		t.Fatalf("no pid in log %q", p.Log().Tail(100))
	}
	if alive(pid) || len(GroupMembers(pid)) > 0 {
		t.Errorf("process group %d is still alive after the failed start", pid)
	}
}

func TestUnhealthyEngineIsRestarted(t *testing.T) {
	p, events := newSim(t, "    mode: always-on\n    health_interval: 100ms\n    health_failures: 2\n    args: [--fail-health-after, \"3\"]\n",
		Options{Restart: true, BackoffMin: 100 * time.Millisecond})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := p.Status().PID
	ev := waitEvent(t, events, status.Failed, 10*time.Second)
	if !strings.Contains(ev.Reason, "stopped answering health checks (2 in a row") {
		t.Errorf("reason %q", ev.Reason)
	}
	if alive(first) {
		t.Errorf("the unhealthy engine (pid %d) still runs", first)
	}
	waitEvent(t, events, status.Ready, 10*time.Second)
	if p.Status().PID == first || p.Status().Starts != 2 {
		t.Errorf("not restarted: %+v", p.Status())
	}
}

// TestAdoptedEngineExitIsSeen: an engine taken over from a previous
// gantry is not this process's child, yet its death is noticed (through a
// pidfd) and reported like any other.
func TestAdoptedEngineExitIsSeen(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "engines.json")
	first, _ := newSim(t, "", Options{Registry: OpenRegistry(reg)})
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := first.Status().PID
	first.Detach() // the engine runs on, as when gantry is replaced
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })

	events := make(chan Event, 10)
	second, err := New(first.Model(), first.Launch(), first.log.Path(), Options{OnEvent: func(ev Event) { events <- ev }, Registry: OpenRegistry(reg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close(context.Background()) })
	if err := second.Adopt(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, status.Ready, 5*time.Second)
	syscall.Kill(-pid, syscall.SIGKILL)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.From == status.Ready {
				if !strings.Contains(ev.Reason, "exited") {
					t.Errorf("left ready for %q, want the exit", ev.Reason)
				}
				return
			}
		case <-deadline:
			t.Fatalf("the adopted engine (pid %d) was killed and gantry did not notice", pid)
		}
	}
}

func TestWaitExitOfAnotherProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { waitExit(cmd.Process.Pid); close(done) }()
	cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waitExit did not return after the process was killed")
	}
	// It watched without reaping: the exit status is still there for the parent.
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("wait after waitExit: %v", err)
	}
}

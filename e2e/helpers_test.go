// Package e2e runs the real gantry binary as a user would: `gantry serve` as
// a daemon, the CLI verbs as separate processes, engines as real processes.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/client"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/testbin"
)

// daemon is a running `gantry serve`.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	home   string
	config string
	out    *syncBuffer
	done   chan struct{}
	args   []string
	// wrap runs gantry through another command (ip netns exec NS).
	wrap []string
	// portRange is the port_range fill gives the config ("" for its own).
	portRange string
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon writes cfg (with LISTEN and ROOT replaced) and runs gantry
// serve on it; with cfg == "" it runs with no config (the demo).
func startDaemon(t *testing.T, cfg string, extraArgs ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, func(string) string { return cfg }, extraArgs...)
}

// startDaemonWith is startDaemon with a config made knowing the home folder.
func startDaemonWith(t *testing.T, mkcfg func(home string) string, extraArgs ...string) *daemon {
	t.Helper()
	home := t.TempDir()
	cfg := mkcfg(home)
	port := testbin.FreePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	d := &daemon{t: t, url: "http://" + listen, home: home, out: newSyncBuffer()}
	args := []string{"serve"}
	if cfg != "" {
		if ownRange.MatchString(cfg) && !strings.Contains(cfg, "port_range:") {
			first, last := testbin.FreePortRange(t, 32)
			d.portRange = fmt.Sprintf("%d-%d", first, last)
		}
		cfg = d.fill(cfg)
		cfg = strings.ReplaceAll(cfg, "PORTSLOT", fmt.Sprint(testbin.FreePort(t)))
		d.config = filepath.Join(home, "gantry.yaml")
		if err := os.WriteFile(d.config, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", d.config)
	} else {
		args = append(args, "--listen", listen)
	}
	args = append(args, extraArgs...)
	d.args = args
	d.launch()
	return d
}

// ownRange: a config whose first line is a top-level key can take a
// port_range line before it.
var ownRange = regexp.MustCompile(`^\n*[a-z_]+:`)

// fill replaces LISTEN and ROOT in a config and gives it the daemon's own
// port_range (testbin.FreePortRange): the default range is every gantry's,
// and a benchmark or a second suite running meanwhile started its own
// engines on the ports of the same model names (gantry then refuses the
// start: something else answers there).
func (d *daemon) fill(cfg string) string {
	cfg = strings.ReplaceAll(cfg, "LISTEN", strings.TrimPrefix(d.url, "http://"))
	cfg = strings.ReplaceAll(cfg, "ROOT", filepath.Join(d.home, "ai"))
	if d.portRange != "" {
		cfg = "port_range: " + d.portRange + "\n" + cfg
	}
	return cfg
}

// launch starts the gantry process of d and waits until it answers.
func (d *daemon) launch() {
	t := d.t
	argv := append(append(append([]string{}, d.wrap...), testbin.Gantry(t)), d.args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = append(cleanEnv(), "HOME="+d.home)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	d.done = done
	cmd := d.cmd
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("gantry serve output:\n%s", d.out.String())
		}
	})
	testbin.WaitHTTP(t, d.url+"/healthz", 20*time.Second)
}

// again starts a new gantry on the same home, config and address, after
// the previous one has gone (killed, or detached).
func (d *daemon) again() *daemon {
	n := &daemon{t: d.t, url: d.url, home: d.home, config: d.config, out: d.out, args: d.args, wrap: d.wrap}
	n.launch()
	return n
}

// closeInheritedFiles marks every file this process inherited beyond
// stdin, stdout and stderr close-on-exec, so no child gets it: a runner's
// lock (flock FILE go test leaves the lock's descriptor open in go test
// and the test binary) would otherwise be held for as long as a detached
// child lives — the test dockerd that TestFaultDockerdRestarted starts
// again outlives the run, and held every later run's lock.
func closeInheritedFiles() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// cleanEnv is the environment without GANTRY_* settings of the machine.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GANTRY_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM and waits for gantry to exit.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		d.t.Errorf("gantry serve did not exit within 60s of SIGTERM")
	}
}

// gantry runs a CLI verb against the daemon and returns its output and
// exit code.
func (d *daemon) gantry(args ...string) (string, int) {
	d.t.Helper()
	full := append(append([]string{}, args...), "--server", d.url)
	if d.config != "" {
		full = append(full, "--config", d.config) // the CLI takes its admin key from it
	}
	return run(d.t, d.home, full...)
}

func run(t *testing.T, home string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(testbin.Gantry(t), args...)
	cmd.Env = append(cleanEnv(), "HOME="+home)
	return combined(t, cmd)
}

// combined runs cmd and returns its output (stdout and stderr) and exit
// code; a command that cannot run at all fails the test.
func combined(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// simPIDs lists the PIDs of `gantry sim` processes whose command line
// mentions marker.
func simPIDs(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cl, " sim ") && strings.Contains(cl, marker) {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitProcsWithEnv waits until at least n live processes hold kv in their
// environment (an engine's marker, which its children inherit) and returns
// them; it fails the test when they do not appear within the time.
func waitProcsWithEnv(t *testing.T, kv string, n int, within time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		pids := procsWithEnv(kv)
		if len(pids) >= n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes with %s in their environment within %s, want %d: %s", len(pids), kv, within, n, cmdlines(pids))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noneLeft says which processes outlived an engine that should be gone:
// every live one with kv in its environment (zombies have none), children
// without a marker in their command line included.
func noneLeft(kv string, was []int) error {
	if left := procsWithEnv(kv); len(left) > 0 {
		return fmt.Errorf("processes left of %s: %s (the engine's group was %s)", kv, cmdlines(left), fmt.Sprint(was))
	}
	return nil
}

// cmdlines names each pid with its command line, for failure messages.
func cmdlines(pids []int) string {
	var s []string
	for _, p := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		s = append(s, fmt.Sprintf("%d %q", p, strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))))
	}
	return "[" + strings.Join(s, "; ") + "]"
}

// events subscribes to d's /api/events (returning once subscribed) and
// collects every event until the test ends; seen returns those so far.
func events(t *testing.T, d *daemon) (seen func() []status.Event) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", d.url+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req) // the headers come once subscribed
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("/api/events: %s", resp.Status)
	}
	t.Cleanup(func() { resp.Body.Close() })
	var mu sync.Mutex
	var evs []status.Event
	go client.ReadSSE(resp.Body, func(kind, data string) {
		var ev status.Event
		if json.Unmarshal([]byte(data), &ev) == nil {
			mu.Lock()
			evs = append(evs, ev)
			mu.Unlock()
		}
	})
	return func() []status.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]status.Event(nil), evs...)
	}
}

// waitEvent waits until seen has an event that match accepts and returns
// it; it fails the test when none came within the time.
func waitEvent(t *testing.T, seen func() []status.Event, within time.Duration, match func(status.Event) bool) status.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs := seen()
		for _, e := range evs {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such event within %s; the events: %+v", within, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// command prepares a CLI verb against the daemon without running it.
func (d *daemon) command(args ...string) *exec.Cmd {
	cmd := exec.Command(testbin.Gantry(d.t), append(append([]string{}, args...), "--server", d.url)...)
	cmd.Env = append(cleanEnv(), "HOME="+d.home)
	return cmd
}

// logs returns a model's log for failure messages.
func (d *daemon) logs(model string) string {
	out, _ := d.gantry("logs", "-n", "50", model)
	return out
}

// statusJSON is `gantry ps --json`.
func (d *daemon) statusJSON() string {
	out, _ := d.gantry("ps", "--json")
	return out
}

// pid is a model's engine pid.
func (d *daemon) pid(model string) int {
	for _, m := range d.status().Models {
		if m.Name == model {
			return m.PID
		}
	}
	return 0
}

// installed is the path the environment variable env names — something
// ./test.sh installs or builds under ~/.cache/gantry-test (what, in the
// failure) — failing the test when it is not there.
func installed(t *testing.T, env, what string) string {
	t.Helper()
	p := os.Getenv(env)
	if _, err := os.Stat(p); p == "" || err != nil {
		t.Fatalf("%s is not there (%s=%q): run ./test.sh, which makes it under ~/.cache/gantry-test", what, env, p)
	}
	return p
}

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// rootLockConfig is the seed's hybrid shape on sim engines: an always-on
// model and a slot whose default starts with gantry.
const rootLockConfig = `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  keep: {engine: sim, memory: 4GiB, mode: always-on, args: [--model, e2e-rootlock-keep]}
  a: {engine: sim, memory: 4GiB, slot: private, args: [--model, e2e-rootlock-a]}
  b: {engine: sim, memory: 4GiB, slot: private, args: [--model, e2e-rootlock-b]}
slots:
  private: {port: PORTSLOT, default: a}
`

// TestOneGantryPerRoot: a second gantry serve on a root in use (another
// listen port, what anyone does to try a config on the production box)
// exits 1 naming the gantry that holds the root, and leaves that gantry's
// engines alone — same pids, same start counts. Once the first is killed
// with -9 (the kernel drops its lock), the second starts and adopts them.
func TestOneGantryPerRoot(t *testing.T) {
	d := startDaemon(t, rootLockConfig)
	d.waitState("keep", "ready", 20*time.Second)
	d.waitState("a", "ready", 20*time.Second)
	before := map[string][2]int{}
	for _, m := range d.status().Models {
		before[m.Name] = [2]int{m.PID, m.Starts}
	}

	// The same config on another port: written beside the first.
	b, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	listen2 := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
	cfg2 := filepath.Join(d.home, "second.yaml")
	firstListen := strings.TrimPrefix(d.url, "http://")
	os.WriteFile(cfg2, []byte(strings.Replace(string(b), "listen: "+firstListen, "listen: "+listen2, 1)), 0o644)

	second := exec.Command(testbin.Gantry(t), "serve", "--config", cfg2)
	second.Env = append(cleanEnv(), "HOME="+d.home)
	out := newSyncBuffer()
	second.Stdout, second.Stderr = out, out
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	select {
	case err := <-exited:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Errorf("second serve: %v, want exit 1\n%s", err, out)
		}
	case <-time.After(20 * time.Second):
		second.Process.Kill()
		<-exited
		t.Fatalf("a second gantry serve on the same root kept running:\n%s", out)
	}
	root := filepath.Join(d.home, "ai")
	want := fmt.Sprintf("root %s is in use by gantry pid %d listening on %s since ", root, d.cmd.Process.Pid, firstListen)
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "stop it, or give this config another root") {
		t.Errorf("second serve said:\n%s\nwant %q", out, want)
	}
	for _, m := range d.status().Models {
		if was := before[m.Name]; was != [2]int{m.PID, m.Starts} {
			t.Errorf("%s: pid, starts %v → %d, %d: the second gantry touched the first one's engine", m.Name, was, m.PID, m.Starts)
		}
	}

	// kill -9 of the first: no stale lock, the second adopts.
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d2 := &daemon{t: t, url: "http://" + listen2, home: d.home, config: cfg2, out: newSyncBuffer(), args: []string{"serve", "--config", cfg2}}
	d2.launch()
	d2.waitState("keep", "ready", 20*time.Second)
	d2.waitState("a", "ready", 20*time.Second)
	for _, m := range d2.status().Models {
		if m.State == "ready" && (m.PID != before[m.Name][0] || !m.Adopted) {
			t.Errorf("%s: pid %d → %d, adopted %v: not adopted", m.Name, before[m.Name][0], m.PID, m.Adopted)
		}
	}
}

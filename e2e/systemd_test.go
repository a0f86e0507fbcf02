package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// TestUnitsPassSystemdAnalyze writes gantry.service and the per-model
// units and has systemd-analyze verify them in a root that holds the
// system's units and stand-ins for the programs they name.
func TestUnitsPassSystemdAnalyze(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "etc", "systemd", "system")
	home := t.TempDir()
	cmd := exec.Command(testbin.Gantry(t), "units", "--per-model", "--out", out, "--config", "../examples/gantry.yaml")
	cmd.Env = append(cleanEnv(), "HOME="+home, "GANTRY_API_KEY=sk-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("units: %v\n%s", err, b)
	}
	units, _ := filepath.Glob(filepath.Join(out, "*.service"))
	if len(units) != 7 {
		t.Fatalf("wrote %d units: %v", len(units), units)
	}
	g, _ := os.ReadFile(filepath.Join(out, "gantry.service"))
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=always", "--config "} {
		if !strings.Contains(string(g), want) {
			t.Errorf("gantry.service lacks %q:\n%s", want, g)
		}
	}
	s, _ := os.ReadFile(filepath.Join(out, "gantry-scout.service"))
	if !strings.Contains(string(s), "ExecStart=/usr/bin/docker run --rm --name gantry-scout") || strings.Contains(string(s), ":latest") {
		t.Errorf("scout unit:\n%s", s)
	}
	// The root: the system's units, docker.service, and stand-ins.
	if err := exec.Command("cp", "-a", "/usr/lib/systemd", filepath.Join(root, "usr", "lib")+"/").Run(); err != nil {
		os.MkdirAll(filepath.Join(root, "usr", "lib"), 0o755)
		if b, err := exec.Command("cp", "-a", "/usr/lib/systemd", filepath.Join(root, "usr", "lib")+"/").CombinedOutput(); err != nil {
			t.Fatalf("copy units: %v %s", err, b)
		}
	}
	dockerUnit := filepath.Join(root, "usr", "lib", "systemd", "system", "docker.service")
	if _, err := os.Stat(dockerUnit); err != nil {
		os.WriteFile(dockerUnit, []byte("[Unit]\nDescription=stand-in\n[Service]\nExecStart=/usr/bin/docker\n"), 0o644)
	}
	for _, prog := range []string{"/usr/bin/docker", "/bin/kill", "/usr/local/bin/ollama", testbin.Gantry(t)} {
		p := filepath.Join(root, prog)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if b, err := exec.Command("cp", "/usr/bin/true", p).CombinedOutput(); err != nil {
			t.Fatalf("stand-in %s: %v %s", prog, err, b)
		}
	}
	args := append([]string{"verify", "--root=" + root, "--man=no"}, units...)
	if b, err := exec.Command("systemd-analyze", args...).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, b)
	}
}

// notifySocket listens where gantry's sd_notify datagrams go.
func notifySocket(t *testing.T) (string, chan string) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return path, ch
}

func waitNotify(t *testing.T, ch chan string, want string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m := <-ch:
			if strings.Contains(m, want) {
				return m
			}
		case <-deadline:
			t.Fatalf("no sd_notify message with %q", want)
		}
	}
}

// TestNotifyAndReload: gantry tells systemd READY, reloads on SIGHUP
// (RELOADING, READY), restarts only the model whose config changed, and
// keeps the running config when the new one is broken.
func TestNotifyAndReload(t *testing.T) {
	sock, notes := notifySocket(t)
	const cfg = `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  keep: {engine: sim, memory: 1GiB, mode: always-on, args: [--model, e2e-reload-keep]}
  change: {engine: sim, memory: 1GiB, mode: always-on, args: [--tokens, "4"]}
`
	t.Setenv("NOTIFY_SOCKET", sock)
	d := startDaemon(t, cfg)
	waitNotify(t, notes, "READY=1")
	d.waitState("keep", "ready", 20*time.Second)
	d.waitState("change", "ready", 20*time.Second)
	keepPID, changePID := d.pid("keep"), d.pid("change")

	b, _ := os.ReadFile(d.config)
	edited := strings.Replace(string(b), `args: [--tokens, "4"]`, `args: [--tokens, "6"]`, 1)
	edited += "  added: {engine: sim, memory: 1GiB}\n"
	os.WriteFile(d.config, []byte(edited), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitNotify(t, notes, "RELOADING=1")
	waitNotify(t, notes, "READY=1")
	d.waitState("change", "ready", 20*time.Second)
	if p := d.pid("keep"); p != keepPID {
		t.Errorf("an unchanged model was restarted (pid %d → %d)", keepPID, p)
	}
	if p := d.pid("change"); p == changePID || p == 0 {
		t.Errorf("the changed model was not restarted (pid %d → %d)", changePID, p)
	}
	if out, _ := d.gantry("ps"); !strings.Contains(out, "added") {
		t.Errorf("the added model is missing:\n%s", out)
	}

	// A broken config is refused; everything keeps running.
	os.WriteFile(d.config, []byte(edited+"  bad: {engine: nope}\n"), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	m := waitNotify(t, notes, "reload refused")
	if !strings.Contains(m, "unknown engine") {
		t.Errorf("status %q", m)
	}
	if p := d.pid("keep"); p != keepPID {
		t.Errorf("a refused reload restarted a model")
	}
	if out, _ := d.gantry("ps"); strings.Contains(out, "bad") {
		t.Errorf("the refused config was half applied:\n%s", out)
	}
}

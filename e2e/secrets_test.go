package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// TestNoPasswordShown: a peer URL with user:password@ is refused by
// validation and by serve, without the password in their words (it
// reached inference clients in peer_down errors, /api/status and the
// dashboard); a service URL's password shows in neither `check` nor
// `docs`.
func TestNoPasswordShown(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "gantry.yaml")
	os.WriteFile(cfg, []byte(`
listen: 127.0.0.1:1
root: `+filepath.Join(home, "ai")+`
peers:
  spark2: {url: "http://admin:hunter2@127.0.0.1:9", token: x}
models:
  m: {engine: sim, memory: 1GiB}
`), 0o644)
	for _, args := range [][]string{{"config", "validate", "--config", cfg}, {"config", "validate", "--json", "--config", cfg}} {
		out, code := run(t, home, args...)
		if code == 0 || !strings.Contains(out, "carries a user name or password") || strings.Contains(out, "hunter2") {
			t.Errorf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	serve := exec.Command(testbin.Gantry(t), "serve", "--config", cfg)
	serve.Env = append(cleanEnv(), "HOME="+home)
	done := make(chan struct{})
	var out []byte
	go func() { out, _ = serve.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		serve.Process.Kill()
		t.Fatal("serve ran with a password in a peer URL")
	}
	if serve.ProcessState.ExitCode() == 0 || strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "user name or password") {
		t.Errorf("serve: exit %d\n%s", serve.ProcessState.ExitCode(), out)
	}

	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
services:
  webui: {url: "http://admin:hunter2@127.0.0.1:9/health"}
models:
  m: {engine: sim, memory: 1GiB}
`)
	out2, _ := d.gantry("check", "--json")
	if strings.Contains(out2, "hunter2") || strings.Contains(out2, "admin") || !strings.Contains(out2, "http://127.0.0.1:9/health") {
		t.Errorf("check shows the service's URL as:\n%s", out2)
	}
	docs := filepath.Join(d.home, "docs")
	if o, code := d.gantry("docs", "--out", docs); code != 0 {
		t.Fatalf("docs: %s", o)
	}
	b, _ := os.ReadFile(filepath.Join(docs, "inference_endpoints.md"))
	if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), "http://127.0.0.1:9/health") {
		t.Errorf("inference_endpoints.md:\n%s", b)
	}
}

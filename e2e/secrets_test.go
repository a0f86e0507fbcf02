package e2e

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestRemovedKeyCutsItsStreams: a reload that removes a key ends the
// inference streams it opened, with an error event that says why (they
// went on to the end, as admin streams no longer do); a stream of a key
// that stays goes on to its end.
func TestRemovedKeyCutsItsStreams(t *testing.T) {
	cfg := `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
auth: {api_keys: [KEYS]}
models:
  m: {engine: sim, memory: 1GiB, mode: always-on, args: [--itl, 100ms, --tokens, "40"]}
`
	d := startDaemon(t, strings.Replace(cfg, "KEYS", "sk-going, sk-staying", 1))
	d.waitState("m", "ready", 30*time.Second)
	type result struct{ key, text string }
	done := make(chan result, 2)
	first := make(chan struct{}, 2)
	for _, key := range []string{"sk-going", "sk-staying"} {
		go func() {
			req, _ := http.NewRequest("POST", d.url+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- result{key, err.Error()}
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			var all strings.Builder
			for {
				l, err := br.ReadString('\n')
				all.WriteString(l)
				if strings.HasPrefix(l, "data: {") && strings.Count(all.String(), "data: {") == 1 {
					first <- struct{}{}
				}
				if err != nil {
					break
				}
			}
			done <- result{key, all.String()}
		}()
	}
	<-first
	<-first
	os.WriteFile(d.config, []byte(strings.ReplaceAll(d.fill(cfg), "KEYS", "sk-staying")), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	for i := 0; i < 2; i++ {
		r := <-done
		switch r.key {
		case "sk-going":
			if strings.Contains(r.text, "[DONE]") || !strings.Contains(r.text, "removed by a config reload") {
				t.Errorf("the removed key's stream went on:\n%s", lastLines(r.text, 3))
			}
		case "sk-staying":
			if !strings.Contains(r.text, "[DONE]") || strings.Contains(r.text, "removed") {
				t.Errorf("the staying key's stream was cut:\n%s", lastLines(r.text, 3))
			}
		}
	}
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// TestAnyOriginWithoutKeysRefused: cors.allowed_origins ["*"] on a
// keyless gateway (it passed without a word: every web page the user
// opens could chat and drive the admin API) is refused by validation —
// which serve runs first; with a key it passes, with a word on what it
// means.
func TestAnyOriginWithoutKeysRefused(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "gantry.yaml")
	write := func(auth string) {
		os.WriteFile(cfg, []byte("listen: 127.0.0.1:1\nroot: "+filepath.Join(home, "ai")+"\n"+auth+"cors: {allowed_origins: [\"*\"]}\nmodels:\n  m: {engine: sim, memory: 1GiB}\n"), 0o644)
	}
	write("")
	if out, code := run(t, home, "config", "validate", "--config", cfg); code == 0 || !strings.Contains(out, "every web page you open") {
		t.Errorf("validate, keyless with *: exit %d\n%s", code, out)
	}
	write("auth: {api_keys: [sk-a]}\n")
	if out, code := run(t, home, "config", "validate", "--config", cfg); code != 0 || !strings.Contains(out, "any site") {
		t.Errorf("validate, keyed with *: exit %d\n%s", code, out)
	}
}

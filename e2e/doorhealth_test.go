package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// curlHealth runs the seed's own check, `curl -s URL` (its cheat sheet
// uses -sf), and returns the status code and body.
func curlHealth(t *testing.T, url string) (int, string) {
	t.Helper()
	out, err := exec.Command("curl", "-s", "-o", "-", "-w", "\n%{http_code}", url).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", url, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:i]
}

// TestDoorsAnswerHealth: the seed's `curl :30000/health` and
// `sglang_health.sh 30001` work on gantry's model and slot addresses:
// 503 with the state in the body while the model is stopped or loading,
// 200 once it is ready — as the engine's own /health — and /healthz the
// same; no key needed, nothing started by asking.
func TestDoorsAnswerHealth(t *testing.T) {
	var modelAddr, slotAddr string
	d := startDaemonWith(t, func(string) string {
		modelAddr = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		slotAddr = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		return `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
auth: {api_keys: [sk-health]}
models:
  scout: {engine: sim, memory: 2GiB, listen: "` + modelAddr + `", args: [--flavor, sglang, --load-until-signal, --model, e2e-health-scout]}
  qwen: {engine: sim, memory: 2GiB, slot: private, args: [--model, e2e-health-qwen]}
  r1: {engine: sim, memory: 2GiB, slot: private, args: [--model, e2e-health-r1]}
slots:
  private: {listen: "` + slotAddr + `", default: qwen}
`
	})
	for _, path := range []string{"/health", "/healthz"} {
		code, body := curlHealth(t, "http://"+modelAddr+path)
		if code != 503 || !strings.Contains(body, `"state":"stopped"`) || !strings.Contains(body, `"model":"scout"`) {
			t.Errorf("%s of a stopped model: %d %s", path, code, body)
		}
	}
	for _, m := range d.status().Models {
		if m.Name == "scout" && m.State != "stopped" {
			t.Errorf("asking for health started the model: %s", m.State)
		}
	}
	start := d.command("start", "scout", "--config", d.config)
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	defer start.Wait()
	d.waitState("scout", "starting", 20*time.Second)
	if code, body := curlHealth(t, "http://"+modelAddr+"/health"); code != 503 || !strings.Contains(body, `"state":"starting"`) {
		t.Errorf("/health of a loading model: %d %s", code, body)
	}
	syscall.Kill(d.pid("scout"), syscall.SIGUSR1) // the load ends
	d.waitState("scout", "ready", 20*time.Second)
	if code, body := curlHealth(t, "http://"+modelAddr+"/health"); code != 200 || body != "" {
		t.Errorf("/health of a ready model: %d %q", code, body)
	}
	if code, body := curlHealth(t, "http://"+modelAddr+"/healthz"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("/healthz of a ready model: %d %s", code, body)
	}
	// The slot's address: the member it has, its default started with gantry.
	d.waitState("qwen", "ready", 20*time.Second)
	if code, body := curlHealth(t, "http://"+slotAddr+"/health"); code != 200 || body != "" {
		t.Errorf("/health of the slot: %d %q", code, body)
	}
	if code, body := curlHealth(t, "http://"+slotAddr+"/healthz"); code != 200 || !strings.Contains(body, `"model":"qwen"`) || !strings.Contains(body, `"slot":"private"`) {
		t.Errorf("/healthz of the slot: %d %s", code, body)
	}
}

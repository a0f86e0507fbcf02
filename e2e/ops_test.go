package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

func TestMetricsPassPromtool(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
models:
  v: {engine: sim, memory: 2GiB, mode: always-on, args: [--flavor, vllm]}
  s: {engine: sim, memory: 2GiB, args: [--flavor, sglang]}
`)
	d.waitState("v", "ready", 20e9)
	c := d.oai("")
	for _, m := range []string{"v", "s"} {
		if _, err := c.Chat.Completions.New(context.Background(), chatParams(m, "x")); err != nil {
			t.Fatal(err)
		}
	}
	scrape := func() string {
		resp, err := http.Get(d.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// The load time is recorded when the ready event is handled, which may
	// come just after the first answer: wait for it.
	text := scrape()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(text, `gantry_model_start_duration_seconds_count{model="s"} 1`) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		text = scrape()
	}
	for _, want := range []string{
		`gantry_build_info{`,
		`gantry_requests_total{code="200",model="v",route="/v1/chat/completions"} 1`,
		`gantry_request_duration_seconds_bucket{model="s"`,
		`gantry_time_to_first_byte_seconds_count{model="v"`,
		`gantry_model_state{engine="sim",model="v",state="ready"} 1`,
		`gantry_model_start_duration_seconds_count{model="s"} 1`,
		`gantry_memory_budget_bytes 6.442450944e+10`,
		`gantry_engine_requests_running{engine="sim",model="v"} 0`,
		`gantry_engine_kv_cache_usage_ratio{engine="sim",model="s"}`,
		`gantry_engine_metrics_up{engine="sim",model="v"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

func TestCheckReportsEachFailure(t *testing.T) {
	dead := testbinFreePort(t)
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
services:
  open-webui: {url: "http://127.0.0.1:`+dead+`"}
models:
  healthy: {engine: sim, memory: 1GiB, mode: always-on}
  embed: {engine: sim, memory: 1GiB, mode: always-on, args: [--embedding]}
  dies: {engine: sim, memory: 1GiB, args: [--flavor, nonsense]}
`)
	d.waitState("healthy", "ready", 20e9)
	d.waitState("embed", "ready", 20e9)
	out, code := d.gantry("check", "--all")
	if code != 1 {
		t.Errorf("exit %d, want 1:\n%s", code, out)
	}
	line := func(name string) []string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 3 && f[2] == name {
				return f
			}
		}
		return nil
	}
	for name, want := range map[string][2]string{"healthy": {"ok", "chat"}, "embed": {"ok", "embedding"}, "dies": {"fail", "-"}, "open-webui": {"fail", "http"}} {
		if f := line(name); f == nil || f[0] != want[0] || f[3] != want[1] {
			t.Errorf("%s: got %v, want %v", name, f, want)
		}
	}
	for _, why := range []string{"exited while starting", "not reachable"} {
		if !strings.Contains(out, why) {
			t.Errorf("check does not say %q:\n%s", why, out)
		}
	}
	out, _ = d.gantry("check", "--json")
	if !strings.Contains(out, `"ok": false`) || !strings.Contains(out, `"health_ms"`) {
		t.Errorf("check --json:\n%s", out)
	}
}

func testbinFreePort(t *testing.T) string { return fmt.Sprint(testbin.FreePort(t)) }

// TestRemoteCLI drives the client verbs from another process the way the
// seed's operator does from VM105: GANTRY_SERVER and GANTRY_TOKEN in the
// environment, no config on that side.
func TestRemoteCLI(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
auth: {api_keys: [sk-user], admin_keys: [sk-admin]}
models:
  chat: {engine: sim, memory: 1GiB, args: [--itl, 5ms, --tokens, "8"]}
  other: {engine: sim, memory: 1GiB}
profiles:
  hybrid: {always_on: [other]}
`)
	remote := func(stdin string, env []string, args ...string) (string, int) {
		cmd := exec.Command(testbin.Gantry(t), args...)
		cmd.Env = append(cleanEnv(), append([]string{"HOME=" + t.TempDir()}, env...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	env := []string{"GANTRY_SERVER=" + d.url, "GANTRY_TOKEN=sk-admin"}

	// events, followed in the background while the rest happens
	ev := exec.Command(testbin.Gantry(t), "events")
	ev.Env = append(cleanEnv(), env...)
	evOut := newSyncBuffer()
	ev.Stdout = evOut
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	defer ev.Process.Kill()

	out, code := remote("", env, "chat", "chat", "Hallo")
	if code != 0 || !strings.Contains(out, "Hallo from the simulated") || !strings.Contains(out, "tokens/s") {
		t.Errorf("chat: exit %d\n%s", code, out)
	}
	out, code = remote("Wie geht es?\n", env, "chat", "chat", "-", "--json", "--system", "Sei kurz.")
	if code != 0 || !strings.Contains(out, `"completion_tokens": 8`) || !strings.Contains(out, `"tokens_per_second"`) {
		t.Errorf("chat --json from stdin: exit %d\n%s", code, out)
	}
	out, code = remote("", env, "profile", "hybrid")
	if code != 0 || !strings.Contains(out, "* hybrid") {
		t.Errorf("profile: exit %d\n%s", code, out)
	}
	d.waitState("other", "ready", 20*time.Second)
	out, code = remote("", env, "ps")
	if code != 0 || !strings.Contains(out, "profile: hybrid") {
		t.Errorf("ps: exit %d\n%s", code, out)
	}
	// A gateway key is not an admin key; a wrong key is wrong; no daemon is no daemon.
	out, code = remote("", []string{"GANTRY_SERVER=" + d.url, "GANTRY_TOKEN=sk-user"}, "stop", "other")
	if code == 0 || !strings.Contains(out, "use an admin key") {
		t.Errorf("stop with the gateway key: exit %d\n%s", code, out)
	}
	out, code = remote("", []string{"GANTRY_SERVER=" + d.url, "GANTRY_TOKEN=sk-nope"}, "ps")
	if code == 0 || !strings.Contains(out, "refused the token") {
		t.Errorf("wrong token: exit %d\n%s", code, out)
	}
	out, code = remote("", []string{"GANTRY_SERVER=" + d.url, "GANTRY_TOKEN=sk-user"}, "chat", "chat", "Hallo", "--max-tokens", "2")
	if code != 0 {
		t.Errorf("chat with the gateway key: exit %d\n%s", code, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(evOut.String(), "other") || !strings.Contains(evOut.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("gantry events showed nothing of the start:\n%s", evOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(evOut.String(), "profile") {
		t.Errorf("no profile event:\n%s", evOut.String())
	}
}

func TestLogsHideSecrets(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
auth: {api_keys: [sk-user-1234], admin_keys: [sk-admin-5678]}
models:
  leaky:
    engine: command
    memory: 1GiB
    start_timeout: 1s
    env: {HF_TOKEN: hf_secret_value, MODE: visible_value}
    command: [sh, -c, "echo token=$HF_TOKEN mode=$MODE key=sk-user-1234; sleep 5"]
`)
	d.gantry("start", "leaky")
	out, _ := d.gantry("logs", "leaky")
	if strings.Contains(out, "hf_secret_value") || strings.Contains(out, "sk-user-1234") || !strings.Contains(out, "token=*** mode=visible_value key=***") {
		t.Errorf("logs:\n%s", out)
	}
	st := d.statusJSON()
	if strings.Contains(st, "hf_secret_value") || strings.Contains(st, "sk-user-1234") {
		t.Errorf("status shows a secret:\n%s", st)
	}
}

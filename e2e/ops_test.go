package e2e

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
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
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
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

package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gantryhq/gantry/internal/activity"
)

// TestBothKVNamesPickTheNewOne: a vLLM exporting the old and the new name
// of its KV-cache gauge is reported by the new one, every time (map order
// must not decide).
func TestBothKVNamesPickTheNewOne(t *testing.T) {
	text := `# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="m"} 0.75
vllm:num_requests_running{model_name="m"} 3
`
	for i := 0; i < 50; i++ {
		got := Pick(ParseGauges(strings.NewReader(text), engineNames))
		if len(got) != 2 {
			t.Fatalf("picked %d gauges", len(got))
		}
		for _, p := range got {
			if p.desc == dKV && p.value != 0.75 {
				t.Fatalf("run %d: KV usage %v, want the new name's 0.75", i, p.value)
			}
		}
	}
}

// TestKeyUsage: counters per configured key name; a name the config does
// not have (a client's text never becomes a label) counts as "-".
func TestKeyUsage(t *testing.T) {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r, keys: newKeyMetrics(r)}
	m.SetKeys([]string{"alice", "key 1"})
	m.KeyUsage(activity.Record{Key: "alice", Status: 200, Tokens: &activity.Tokens{Prompt: 12, Completion: 30}, HeldMS: 1500})
	m.KeyUsage(activity.Record{Key: "alice", Status: 429})
	m.KeyUsage(activity.Record{Key: "mallory", Status: 200, Tokens: &activity.Tokens{Prompt: 1, Completion: 1}})
	want := `
# HELP gantry_key_completion_tokens_total Completion tokens of the key's answers, as the engines counted them.
# TYPE gantry_key_completion_tokens_total counter
gantry_key_completion_tokens_total{key="-"} 1
gantry_key_completion_tokens_total{key="alice"} 30
gantry_key_completion_tokens_total{key="key 1"} 0
# HELP gantry_key_engine_seconds_total Seconds the key's requests held an engine, from lease to end.
# TYPE gantry_key_engine_seconds_total counter
gantry_key_engine_seconds_total{key="alice"} 1.5
gantry_key_engine_seconds_total{key="key 1"} 0
# HELP gantry_key_requests_total Gateway requests by key name and HTTP status (429: a limit of the key refused it).
# TYPE gantry_key_requests_total counter
gantry_key_requests_total{code="200",key="-"} 1
gantry_key_requests_total{code="200",key="alice"} 1
gantry_key_requests_total{code="429",key="alice"} 1
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want), "gantry_key_requests_total", "gantry_key_completion_tokens_total", "gantry_key_engine_seconds_total"); err != nil {
		t.Error(err)
	}
}

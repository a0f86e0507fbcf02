package metrics

import (
	"strings"
	"testing"
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

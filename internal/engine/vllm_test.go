package engine_test

import (
	"testing"

	"github.com/gantryhq/gantry/internal/engine"
)

// TestVLLMTakesKVBytesFrom: the version quirk of --kv-cache-memory-bytes
// (moved here from plan's TestExactKVBudgets with the knowledge).
func TestVLLMTakesKVBytesFrom(t *testing.T) {
	d, err := engine.Lookup(engine.VLLM)
	if err != nil {
		t.Fatal(err)
	}
	for image, ok := range map[string]bool{"vllm/vllm-openai:v0.10.2": false, "vllm/vllm-openai:v0.11.0": true,
		"nvcr.io/nvidia/vllm:25.09-py3": false, "nvcr.io/nvidia/vllm:26.05.post1-py3": true, "my/vllm:spark": true, "": true} {
		if got, _ := d.Memory.KVBytesIn(image); got != ok {
			t.Errorf("%q: %v", image, got)
		}
	}
}

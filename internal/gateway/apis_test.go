package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// gatedRunner is an engine that turns ready when its gate opens (at once
// when the gate is nil).
type gatedRunner struct {
	m    *config.Model
	l    engine.Launch
	o    supervise.Options
	gate chan struct{}

	mu    sync.Mutex
	state status.State
}

func (r *gatedRunner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.state == status.Ready {
		r.mu.Unlock()
		return nil
	}
	r.state = status.Starting
	r.mu.Unlock()
	r.o.OnEvent(supervise.Event{Model: r.m.Name, From: status.Stopped, To: status.Starting})
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.state = status.Ready
	r.mu.Unlock()
	r.o.OnEvent(supervise.Event{Model: r.m.Name, From: status.Starting, To: status.Ready})
	return nil
}
func (r *gatedRunner) Stop(context.Context) error  { return nil }
func (r *gatedRunner) Close(context.Context) error { return nil }
func (r *gatedRunner) Status() supervise.Status    { return supervise.Status{State: r.State()} }
func (r *gatedRunner) State() status.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == "" {
		return status.Stopped
	}
	return r.state
}
func (r *gatedRunner) SetRestart(bool)      {}
func (r *gatedRunner) Model() *config.Model { return r.m }
func (r *gatedRunner) Launch() engine.Launch {
	return r.l
}
func (r *gatedRunner) Log() *supervise.Log { return nil }

// gateway runs a gateway in front of engines, one per model of yaml whose
// port is written ENGINE_<name>; gates holds the gates of slow models.
func testGateway(t *testing.T, yaml string, engines map[string]http.Handler, gates map[string]chan struct{}) string {
	t.Helper()
	return testGatewayWith(t, yaml, engines, gates, nil)
}

// testGatewayWith is testGateway with setup run on the gateway first.
func testGatewayWith(t *testing.T, yaml string, engines map[string]http.Handler, gates map[string]chan struct{}, setup func(*Gateway)) string {
	t.Helper()
	g, _ := newTestGateway(t, yaml, engines, gates)
	if setup != nil {
		setup(g)
	}
	mux := http.NewServeMux()
	g.Register(mux, Wraps{Gateway: func(h http.Handler) http.Handler { return h }})
	gw := httptest.NewServer(mux)
	t.Cleanup(gw.Close)
	return gw.URL
}

// newTestGateway is the gateway of testGateway, not serving yet, and its
// config.
func newTestGateway(t *testing.T, yaml string, engines map[string]http.Handler, gates map[string]chan struct{}) (*Gateway, *config.Config) {
	t.Helper()
	for name, h := range engines {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		yaml = strings.ReplaceAll(yaml, "ENGINE_"+name, port)
	}
	c, err := config.Parse("t.yaml", []byte("root: "+t.TempDir()+"\nmemory: {reserve: 0GiB}\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sched.New(c, sched.Options{MemoryTotal: 10 << 30, NewRunner: func(sp sched.RunnerSpec) (sched.Runner, error) {
		return &gatedRunner{m: sp.Model, l: sp.Launch, o: sp.Options, gate: gates[sp.Model.Name]}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	g := New(s, nil, nil)
	t.Cleanup(g.Close)
	return g, c
}

func post(t *testing.T, url, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// chatEngine answers chat completions (streamed or not) and counts the
// requests per path.
func chatEngine(hits *sync.Map) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := hits.LoadOrStore(r.URL.Path, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		if strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: "+chatChunk("Hallo")+"\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "x", "choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]string{"role": "assistant", "content": "echo " + string(b)}}}})
	})
}

func chatChunk(text string) string {
	return `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + text + `"},"finish_reason":null}]}`
}

func hitCount(hits *sync.Map, path string) int32 {
	if n, ok := hits.Load(path); ok {
		return n.(*atomic.Int32).Load()
	}
	return 0
}

// TestNativeFirstThenTranslated: an engine that serves /v1/messages gets
// the client's body unchanged (the model said as it knows it); one that
// answers 404 there is asked in translation, and is not asked natively
// again.
func TestNativeFirstThenTranslated(t *testing.T) {
	var nativeGot string
	native := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		nativeGot = r.URL.Path + " " + string(b)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"type":"message","content":[{"type":"text","text":"native"}]}`)
	})
	var hits sync.Map
	gw := testGateway(t, `models:
  vllm: {engine: sim, memory: 1GiB, port: ENGINE_vllm, aliases: [v]}
  old: {engine: sim, memory: 1GiB, port: ENGINE_old}
`, map[string]http.Handler{"vllm": native, "old": chatEngine(&hits)}, nil)
	body := `{"model":"v","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u"}}`
	code, _, got := post(t, gw+"/v1/messages", body)
	if code != 200 || !strings.Contains(got, "native") || nativeGot != `/v1/messages {"model":"vllm","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u"}}` {
		t.Errorf("native: %d %s; the engine got %s", code, got, nativeGot)
	}
	for i := 0; i < 2; i++ {
		code, _, got = post(t, gw+"/v1/messages", strings.Replace(body, `"v"`, `"old"`, 1))
		if code != 200 || !strings.Contains(got, `"type":"message"`) || !strings.Contains(got, "echo") {
			t.Errorf("translated: %d %s", code, got)
		}
	}
	if n := hitCount(&hits, "/v1/messages"); n != 1 {
		t.Errorf("the translating engine was asked natively %d times", n)
	}
	if n := hitCount(&hits, "/v1/chat/completions"); n != 2 {
		t.Errorf("%d translated requests", n)
	}
}

func TestErrorsEverywhere(t *testing.T) {
	var hits sync.Map
	gw := testGateway(t, "models:\n  m: {engine: sim, memory: 1GiB, port: ENGINE_m, aliases: [default]}\n",
		map[string]http.Handler{"m": chatEngine(&hits)}, nil)
	cases := []struct {
		method, path string
		status       int
		says         string
	}{
		{"GET", "/v1/chat/completions", 405, "takes POST"},
		{"POST", "/v1/nope", 404, "route_not_found"},
		{"POST", "/chat/completions", 404, "did you mean /v1/chat/completions"},
		{"GET", "/models", 404, "with /v1"},
		{"POST", "/v1/messages/nope", 404, `"type":"not_found_error"`},
		{"GET", "/v1/models/default", 200, `"alias_of":"m"`},
		{"GET", "/v1/models/nope", 404, "model_not_found"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, gw+c.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.says) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", c.method, c.path, resp.StatusCode, b)
		}
	}
}

// TestLoadingKeepsTheStreamAlive: a streamed chat for a model that takes a
// while to load gets its headers, keep-alive comments and (asked for) a
// visible note before the answer.
func TestLoadingKeepsTheStreamAlive(t *testing.T) {
	loadingFirst, loadingEvery = 20*time.Millisecond, 20*time.Millisecond
	defer func() { loadingFirst, loadingEvery = 2*time.Second, 10*time.Second }()
	gate := make(chan struct{})
	var hits sync.Map
	gw := testGateway(t, "models:\n  slow: {engine: sim, memory: 1GiB, port: ENGINE_slow, loading_message: true}\n",
		map[string]http.Handler{"slow": chatEngine(&hits)}, map[string]chan struct{}{"slow": gate})
	resp, err := http.Post(gw+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"slow","stream":true,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var got []string
	for len(got) < 6 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if l = strings.TrimSpace(l); l != "" {
			got = append(got, l)
		}
		if strings.HasPrefix(l, ": gantry is loading") && len(got) >= 3 {
			close(gate)
			got = append(got, "(gate opened)")
		}
	}
	all := strings.Join(got, "\n")
	if resp.StatusCode != 200 || !strings.Contains(got[0], "(loading slow") || !strings.Contains(all, ": gantry is loading slow") ||
		!strings.Contains(all, `"content":"Hallo"`) || !strings.Contains(all, "[DONE]") {
		t.Errorf("%d:\n%s", resp.StatusCode, all)
	}
}

// bodyEngine answers every request with an empty chat answer and keeps
// the last request's body in got.
func bodyEngine(got *atomic.Value) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[]}`)
	})
}

func TestPresetsSetAndStrip(t *testing.T) {
	var got atomic.Value
	engine := bodyEngine(&got)
	gw := testGateway(t, `models:
  qwen3: {engine: sim, memory: 1GiB, port: ENGINE_qwen3}
presets:
  qwen-fast: {model: qwen3, set: {temperature: 0.2, chat_template_kwargs: {enable_thinking: false}}, strip: [top_k, extra.drop]}
`, map[string]http.Handler{"qwen3": engine}, nil)
	code, _, _ := post(t, gw+"/v1/chat/completions",
		`{"model":"qwen-fast","top_k":5,"temperature":1.5,"seed":12345678901234567890,"extra":{"drop":1,"keep":2},"chat_template_kwargs":{"other":true},"messages":[]}`)
	b := got.Load().(string)
	for _, want := range []string{`"model":"qwen3"`, `"temperature":0.2`, `"chat_template_kwargs":{"enable_thinking":false,"other":true}`,
		`"seed":12345678901234567890`, `"extra":{"keep":2}`} {
		if !strings.Contains(b, want) {
			t.Errorf("missing %s in %s", want, b)
		}
	}
	if code != 200 || strings.Contains(b, "top_k") {
		t.Errorf("%d %s", code, b)
	}
	resp, _ := http.Get(gw + "/v1/models")
	lb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(lb), `"id":"qwen-fast"`) || !strings.Contains(string(lb), `"preset_of":"qwen3"`) {
		t.Errorf("models: %s", lb)
	}
}

// TestAmbiguousModelEverywhere: the routes served natively by an engine
// (Anthropic Messages and count_tokens, Responses) and the translated
// ones refuse a body that names the model twice, in another case or
// escaped — as the OpenAI routes do — before any engine sees it: gantry
// and the engine would read different models. The error comes in the
// route's own shape.
func TestAmbiguousModelEverywhere(t *testing.T) {
	var hits atomic.Int32
	engine := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"type":"message","content":[],"input_tokens":1}`)
	})
	gw := testGateway(t, "models:\n  m: {engine: sim, memory: 1GiB, port: ENGINE_m}\n  n: {engine: sim, memory: 1GiB, port: ENGINE_n}\n",
		map[string]http.Handler{"m": engine, "n": engine}, nil)
	bodies := []string{
		`{"model":"m","Model":"n","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"input":"hi"}`,
		`{"model":"m","model":"n","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"input":"hi"}`,
		`{"\u006dodel":"n","model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"input":"hi"}`,
	}
	for _, route := range []string{"/v1/messages", "/v1/messages/count_tokens", "/v1/responses"} {
		for _, b := range bodies {
			code, _, got := post(t, gw+route, b)
			if code != 400 || !strings.Contains(got, "ambiguous") {
				t.Errorf("%s %s: %d %s", route, b, code, got)
			}
			if strings.HasPrefix(route, "/v1/messages") && !strings.Contains(got, `"type":"error"`) {
				t.Errorf("%s: not in Anthropic's shape: %s", route, got)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the engine got %d ambiguous bodies", n)
	}
	if code, _, got := post(t, gw+"/v1/messages", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`); code != 200 {
		t.Errorf("one model: %d %s", code, got)
	}
}

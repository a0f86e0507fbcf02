package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/telemetry"
)

// TestTracedRequests: with tracing on, a request's spans are the child of
// the client's traceparent, a translated one has its translate span, and
// the engine gets the answer span's traceparent; with tracing off the
// engine gets the client's traceparent as sent.
func TestTracedRequests(t *testing.T) {
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var mu sync.Mutex
	var got []string
	engine := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Traceparent"))
		mu.Unlock()
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r) // no native Messages: gantry translates
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","model":"scout","choices":[{"index":0,"message":{"role":"assistant","content":"Hallo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	})
	serve := func(tr *telemetry.Tracer) string {
		g, _ := newTestGateway(t, "models:\n  scout: {engine: sim, memory: 1GiB, port: ENGINE_scout}\n", map[string]http.Handler{"scout": engine}, nil)
		g.SetTracer(tr)
		mux := http.NewServeMux()
		g.Register(mux, Wraps{Gateway: func(h http.Handler) http.Handler { return h }})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	exp := tracetest.NewInMemoryExporter()
	tr, err := telemetry.New(&config.Telemetry{OTLPEndpoint: "http://127.0.0.1:1", Sample: 0}, "test", telemetry.Options{Exporter: exp, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(t.Context()) })
	send := func(url, path, body string) {
		req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
		req.Header.Set("Traceparent", client)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	on := serve(tr)
	send(on, "/v1/messages", `{"model":"scout","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	names := map[string]string{}
	answers := 0
	for _, s := range exp.GetSpans() {
		if s.Name == "answer" {
			answers++
		}
		names[s.Name] = s.SpanContext.SpanID().String()
		if s.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("%s is in another trace", s.Name)
		}
	}
	if answers != 2 {
		t.Errorf("%d answer spans, want 2: the native try and the translation", answers)
	}
	for _, want := range []string{"POST /v1/messages", "translate", "answer"} {
		if names[want] == "" {
			t.Errorf("no %s span: %v", want, names)
		}
	}
	mu.Lock()
	sent := append([]string(nil), got...)
	got = nil
	mu.Unlock()
	// The native try (404) and the translation each carry a span of gantry's.
	for _, s := range sent {
		if strings.Contains(s, "00f067aa0ba902b7") || !strings.Contains(s, "4bf92f3577b34da6a3ce929d0e0e4736") {
			t.Errorf("the engine got %q: want gantry's answer span in the client's trace", s)
		}
	}
	if last := sent[len(sent)-1]; !strings.Contains(last, names["answer"]) {
		t.Errorf("the translated request carries %q, not the answer span %s", last, names["answer"])
	}

	off := serve(nil)
	send(off, "/v1/chat/completions", `{"model":"scout","messages":[{"role":"user","content":"hi"}]}`)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "/v1/chat/completions "+client {
		t.Errorf("tracing off: the engine got %v, want the client's traceparent as sent", got)
	}
}

// TestQueueSpanForAPlace: a request that waits for a place under
// max_concurrency, on a model that is ready all along, has its queue span
// (README, Traces: "a load, a slot's switch, a place under
// max_concurrency"); one that waits for nothing has none.
func TestQueueSpanForAPlace(t *testing.T) {
	started, release := make(chan struct{}, 2), make(chan struct{})
	engine := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[]}`)
	})
	g, _ := newTestGateway(t, "models:\n  scout: {engine: sim, memory: 1GiB, max_concurrency: 1, port: ENGINE_scout}\n", map[string]http.Handler{"scout": engine}, nil)
	exp := tracetest.NewInMemoryExporter()
	tr, err := telemetry.New(&config.Telemetry{OTLPEndpoint: "http://127.0.0.1:1", Sample: 1}, "test", telemetry.Options{Exporter: exp, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(t.Context()) })
	g.SetTracer(tr)
	mux := http.NewServeMux()
	g.Register(mux, Wraps{Gateway: func(h http.Handler) http.Handler { return h }})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	chat := `{"model":"scout","messages":[{"role":"user","content":"hi"}]}`
	done := make(chan int, 2)
	go func() { c, _, _ := post(t, srv.URL+"/v1/chat/completions", chat); done <- c }()
	<-started // the first holds the one place (and loaded the model)
	close(release)
	<-done
	queues := func() int {
		n := 0
		for _, s := range exp.GetSpans() {
			if s.Name == "queue" {
				n++
			}
		}
		return n
	}
	exp.Reset()
	release = make(chan struct{})
	go func() { c, _, _ := post(t, srv.URL+"/v1/chat/completions", chat); done <- c }()
	<-started
	if n := queues(); n != 0 {
		t.Errorf("a request on a ready model with a free place has %d queue spans", n)
	}
	go func() { c, _, _ := post(t, srv.URL+"/v1/chat/completions", chat); done <- c }()
	for g.sched.Status().Model("scout").Queued == 0 {
		runtime.Gosched() // the second waits for the place
	}
	close(release)
	<-started
	for range 2 {
		if c := <-done; c != 200 {
			t.Fatalf("a request answered %d", c)
		}
	}
	if n := queues(); n != 1 {
		t.Errorf("%d queue spans, want 1: the request that waited for a place", n)
	}
}

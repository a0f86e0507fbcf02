package telemetry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

func newTest(t *testing.T, sample float64) (*Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := New(&config.Telemetry{OTLPEndpoint: "http://127.0.0.1:4318", Sample: sample}, "test", Options{Exporter: exp, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(t.Context()) })
	return tr, exp
}

// TestColdRequestTrace: a request that switched a slot and waited for a
// start is one trace: its span (the child of the client's traceparent),
// queue → switch, start (its load phases as events) → answer (ttft,
// tokens), in order; the engine gets the answer span's traceparent.
func TestColdRequestTrace(t *testing.T) {
	tr, exp := newTest(t, 0) // sample 0: only the client's sampled traceparent makes it traced
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	r.Header.Set("Traceparent", client)
	t0 := time.Now().Add(-time.Second) // the wait is over before the answer starts
	q := tr.Begin(r)
	if q == nil {
		t.Fatal("a sampled traceparent was not followed")
	}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr.Event(status.Event{Kind: status.KindSwitch, Model: "private", From: "qwen", To: "r1", Time: at(1)})
	tr.Event(status.Event{Kind: status.KindState, Model: "r1", From: "stopped", To: "starting", Time: at(200)})
	for i, p := range []string{"loading weights", "loading weights", "capturing CUDA graphs"} {
		tr.Event(status.Event{Kind: status.KindProgress, Model: "r1", Progress: &status.Progress{Phase: p}, Time: at(300 + 100*i)})
	}
	tr.Event(status.Event{Kind: status.KindState, Model: "r1", From: "starting", To: "ready", Time: at(700)})
	q.Waited("r1", t0, at(701))
	h := http.Header{"Traceparent": {client}}
	q.Answer("r1", "", h)
	q.End(200, "r1", time.Now(), 12, 30)

	spans := exp.GetSpans()
	byName := map[string]int{}
	for i, s := range spans {
		byName[s.Name] = i
	}
	for _, want := range []string{"POST /v1/chat/completions", "queue", "switch", "start", "answer"} {
		if _, ok := byName[want]; !ok {
			t.Fatalf("no %s span among %d", want, len(spans))
		}
	}
	req, queue, sw, start, ans := spans[byName["POST /v1/chat/completions"]], spans[byName["queue"]], spans[byName["switch"]], spans[byName["start"]], spans[byName["answer"]]
	if req.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || req.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("the request span is not the client's child: trace %s parent %s", req.SpanContext.TraceID(), req.Parent.SpanID())
	}
	for _, c := range []struct {
		name   string
		parent string
		got    tracetest.SpanStub
	}{{"queue", "request", queue}, {"answer", "request", ans}, {"switch", "queue", sw}, {"start", "queue", start}} {
		want := req.SpanContext.SpanID()
		if c.parent == "queue" {
			want = queue.SpanContext.SpanID()
		}
		if c.got.Parent.SpanID() != want {
			t.Errorf("%s's parent is not the %s span", c.name, c.parent)
		}
	}
	if !(queue.StartTime.Before(start.StartTime) && start.EndTime.Before(ans.StartTime) && !sw.StartTime.After(start.StartTime)) {
		t.Errorf("not in order: queue %v, switch %v, start %v–%v, answer %v", queue.StartTime, sw.StartTime, start.StartTime, start.EndTime, ans.StartTime)
	}
	var phases []string
	for _, e := range start.Events {
		phases = append(phases, e.Name)
	}
	if strings.Join(phases, ",") != "loading weights,capturing CUDA graphs" {
		t.Errorf("load phases %v", phases)
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range ans.Attributes {
		attrs[a.Key] = a.Value
	}
	if attrs["gen_ai.usage.input_tokens"].AsInt64() != 12 || attrs["gen_ai.usage.output_tokens"].AsInt64() != 30 {
		t.Errorf("answer attributes %v", ans.Attributes)
	}
	tp := h.Get("Traceparent")
	if !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-"+ans.SpanContext.SpanID().String()) {
		t.Errorf("the engine gets traceparent %q, want the answer span's", tp)
	}
}

// TestNotSampled: sample 0 and no traceparent: nothing is traced, and a
// nil Request takes every call.
func TestNotSampled(t *testing.T) {
	tr, exp := newTest(t, 0)
	q := tr.Begin(httptest.NewRequest("POST", "/v1/chat/completions", nil))
	if q != nil {
		t.Fatal("traced at sample 0")
	}
	q.Waited("m", time.Now(), time.Now())
	q.Answer("m", "", http.Header{})
	q.End(200, "m", time.Now(), 1, 1)
	var off *Tracer
	off.Event(status.Event{})
	if off.Begin(httptest.NewRequest("GET", "/", nil)) != nil || len(exp.GetSpans()) != 0 {
		t.Error("spans without tracing")
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":           "http://127.0.0.1:4318/v1/traces",
		"http://collector:4318/":          "http://collector:4318/v1/traces",
		"https://otel.lan/otlp":           "https://otel.lan/otlp/v1/traces",
		"http://127.0.0.1:4318/v1/traces": "http://127.0.0.1:4318/v1/traces",
	} {
		if got := TracesURL(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// BenchmarkOff is what tracing off costs a request: every hook the
// gateway calls, on the nil tracer it holds then.
func BenchmarkOff(b *testing.B) {
	var tr *Tracer
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	h := http.Header{}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		q := tr.Begin(r)
		q.Waited("m", now, now)
		q.Translated("/v1/messages → /v1/chat/completions", now)
		q.Answer("m", "", h)
		q.End(200, "m", now, 1, 1)
		tr.Event(status.Event{})
	}
}

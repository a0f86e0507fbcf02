package telemetry

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Request is one traced request. A nil *Request (tracing off, or the
// request not sampled) does nothing.
type Request struct {
	t    *Tracer
	ctx  context.Context // carries the request's span
	span trace.Span

	// The engine's (or peer's) answer: its span stays open until End,
	// which knows the tokens.
	answer      trace.Span
	answerCtx   context.Context
	answerBegan time.Time
}

// Begin starts the span of a request, the child of the client's
// traceparent when it sends one. Nil when tracing is off or the request is
// not sampled: then the client's traceparent reaches the engine as sent.
func (t *Tracer) Begin(r *http.Request) *Request {
	if t == nil {
		return nil
	}
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := t.tr.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
	if !span.IsRecording() {
		return nil
	}
	return &Request{t: t, ctx: ctx, span: span}
}

// Waited records the request's wait for model from began to ended (a
// load, a slot's switch, a place under max_concurrency): a queue span, and
// in it the switch and the engine's start that happened meanwhile, the
// start with each load phase as an event.
func (q *Request) Waited(model string, began, ended time.Time) {
	if q == nil {
		return
	}
	ctx, queue := q.t.tr.Start(q.ctx, "queue", trace.WithTimestamp(began),
		trace.WithAttributes(attribute.String("gantry.model", model)))
	q.t.mu.Lock()
	sw, ld := q.t.slots[model], q.t.loads[model]
	var l load
	if ld != nil {
		l = *ld
		l.phases = append([]phase(nil), ld.phases...)
	}
	q.t.mu.Unlock()
	if sw != nil && !sw.at.Before(began) && !sw.at.After(ended) {
		end := ended
		if ld != nil && l.began.After(sw.at) && l.began.Before(ended) {
			end = l.began // the old member drained and stopped until the new one's start
		}
		_, s := q.t.tr.Start(ctx, "switch", trace.WithTimestamp(sw.at), trace.WithAttributes(
			attribute.String("gantry.slot", sw.slot), attribute.String("gantry.switch.from", sw.from), attribute.String("gantry.switch.to", model)))
		s.End(trace.WithTimestamp(end))
	}
	if ld != nil && !l.began.After(ended) && (l.ready.IsZero() || !l.ready.Before(began)) {
		q.start(ctx, model, l, began, ended)
	}
	queue.End(trace.WithTimestamp(ended))
}

// start records an engine's start within a request's wait: from its
// launch (or the request's arrival, when it joined a load under way) to
// its readiness.
func (q *Request) start(ctx context.Context, model string, l load, began, ended time.Time) {
	from, joined := l.began, l.began.Before(began)
	if joined {
		from = began
	}
	end := l.ready
	if end.IsZero() || end.After(ended) {
		end = ended
	}
	_, s := q.t.tr.Start(ctx, "start", trace.WithTimestamp(from), trace.WithAttributes(
		attribute.String("gantry.model", model), attribute.Bool("gantry.load.joined", joined)))
	for _, p := range l.phases {
		if !p.at.Before(from) {
			s.AddEvent(p.name, trace.WithTimestamp(p.at))
		}
	}
	if l.failed != "" {
		s.SetStatus(codes.Error, l.failed)
	}
	s.End(trace.WithTimestamp(end))
}

// Answer starts the span of the engine's answer (or a peer's: then
// peer names it) and writes its traceparent into h, the headers the
// engine gets: the engine's own span becomes its child.
func (q *Request) Answer(model, peer string, h http.Header) {
	if q == nil {
		return
	}
	attrs := []attribute.KeyValue{attribute.String("gantry.model", model)}
	name := "answer"
	if peer != "" {
		name = "peer"
		attrs = append(attrs, attribute.String("gantry.peer", peer))
	}
	if q.answer != nil {
		q.answer.End() // an earlier try (an engine's native route it did not serve)
	}
	q.answerBegan = time.Now()
	q.answerCtx, q.answer = q.t.tr.Start(q.ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	q.t.Inject(q.answerCtx, h)
}

// Translated records a translation between the client's API and the
// engine's (api: anthropic, responses, ollama) from began to now.
func (q *Request) Translated(api string, began time.Time) {
	if q == nil {
		return
	}
	_, s := q.t.tr.Start(q.ctx, "translate", trace.WithTimestamp(began), trace.WithAttributes(attribute.String("gantry.api", api)))
	s.End()
}

// End ends the request's spans, when its answer has gone out: the
// answer's with its time to first token (first: when the answer's first
// byte went to the client; zero: none did) and the engine's token counts
// (prompt, completion; -1: unknown), the request's with its status and
// the model that served.
func (q *Request) End(code int, model string, first time.Time, prompt, completion int) {
	if q == nil {
		return
	}
	if q.answer != nil {
		if first.After(q.answerBegan) {
			q.answer.SetAttributes(attribute.Float64("gantry.ttft_ms", float64(first.Sub(q.answerBegan).Microseconds())/1000))
		}
		if prompt >= 0 {
			// The OpenTelemetry GenAI semantic conventions' names.
			q.answer.SetAttributes(attribute.Int("gen_ai.usage.input_tokens", prompt), attribute.Int("gen_ai.usage.output_tokens", completion))
		}
		q.answer.End()
	}
	q.span.SetAttributes(attribute.Int("http.response.status_code", code), attribute.String("gantry.model", model))
	if code >= 500 {
		q.span.SetStatus(codes.Error, http.StatusText(code))
	}
	q.span.End()
}

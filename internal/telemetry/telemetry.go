// Package telemetry traces the gateway's requests with OpenTelemetry's
// official Go SDK and sends the spans to a collector over OTLP/HTTP
// (telemetry: in the config; off when absent). Each traced request is one
// server span with children: the wait for its model (queue), and in it the
// slot's switch and the engine's start with its load phases as events;
// the engine's answer (time to first token, tokens); a translation or a
// relay to a peer. A client's W3C traceparent is followed, and the
// engine gets the answer span's, so an engine that traces (vLLM's
// --otlp-traces-endpoint) joins the same trace.
//
// Off, there is no Tracer: the gateway holds a nil *Tracer, and every
// method of a nil *Tracer or *Request does nothing and allocates nothing.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// Tracer makes the spans of the gateway's requests. Safe for concurrent
// use; nil is tracing off.
type Tracer struct {
	tp   *sdktrace.TracerProvider
	tr   trace.Tracer
	prop propagation.TraceContext

	mu    sync.Mutex
	loads map[string]*load    // model → its current (or last) load
	slots map[string]*switch_ // member switched to → its slot's last switch
}

// load is one engine start as the scheduler's events told it.
type load struct {
	began, ready time.Time
	failed       string
	phases       []phase
}

type phase struct {
	name string
	at   time.Time
}

// switch_ is a slot's switch from one member to another.
type switch_ struct {
	slot, from string
	at         time.Time
}

// Options tune New.
type Options struct {
	// Logger gets the exporter's errors (a collector that cannot be
	// reached); nil: discarded.
	Logger *slog.Logger
	// Exporter replaces the OTLP/HTTP exporter (tests use an in-memory one).
	Exporter sdktrace.SpanExporter
	// Sync exports each span as it ends, instead of in batches.
	Sync bool
}

// New returns the tracer of a telemetry: section (nil: off, and New
// returns nil). version names gantry's build in the spans' resource.
func New(t *config.Telemetry, version string, o Options) (*Tracer, error) {
	if t == nil {
		return nil, nil
	}
	exp := o.Exporter
	if exp == nil {
		u, err := url.Parse(TracesURL(t.OTLPEndpoint))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("telemetry.otlp_endpoint %q: not an http:// or https:// URL (e.g. http://127.0.0.1:4318)", t.OTLPEndpoint)
		}
		exp = newOTLP(u.String(), version)
	}
	if o.Logger != nil {
		lg := o.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { lg.Warn("telemetry", "err", err) }))
	}
	res := resource.NewSchemaless(attribute.String("service.name", "gantry"), attribute.String("service.version", version))
	proc := sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second))
	if o.Sync {
		proc = sdktrace.WithSyncer(exp)
	}
	// A client's sampled traceparent is always followed; the rest by ratio.
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(t.Sample))
	tp := sdktrace.NewTracerProvider(proc, sdktrace.WithResource(res), sdktrace.WithSampler(sampler))
	return &Tracer{tp: tp, tr: tp.Tracer("github.com/gantryhq/gantry"),
		loads: map[string]*load{}, slots: map[string]*switch_{}}, nil
}

// TracesURL is where spans go: otlp_endpoint's /v1/traces (OTLP/HTTP's
// path), or the URL as written when it names that path itself.
func TracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || strings.HasSuffix(u.Path, "/v1/traces") {
		return endpoint
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String()
}

// Shutdown sends the spans still buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Event follows the scheduler's events: each model's starts and their load
// phases, and the slots' switches, for the spans of the requests that
// waited through them.
func (t *Tracer) Event(ev status.Event) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case ev.Kind == status.KindState && ev.To == string(status.Starting):
		t.loads[ev.Model] = &load{began: ev.Time}
	case ev.Kind == status.KindState && ev.To == string(status.Ready):
		if l := t.loads[ev.Model]; l != nil && l.ready.IsZero() {
			l.ready = ev.Time
		}
	case ev.Kind == status.KindState && ev.To == string(status.Failed):
		if l := t.loads[ev.Model]; l != nil && l.ready.IsZero() {
			l.ready, l.failed = ev.Time, ev.Reason
		}
	case ev.Kind == status.KindProgress && ev.Progress != nil:
		l := t.loads[ev.Model]
		if l != nil && l.ready.IsZero() && (len(l.phases) == 0 || l.phases[len(l.phases)-1].name != ev.Progress.Phase) {
			l.phases = append(l.phases, phase{ev.Progress.Phase, ev.Time})
		}
	case ev.Kind == status.KindSwitch:
		t.slots[ev.To] = &switch_{slot: ev.Model, from: ev.From, at: ev.Time}
	}
}

// Inject writes the W3C traceparent (and tracestate) of ctx's span into h,
// replacing the client's: the engine's span is a child of gantry's.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if t == nil {
		return
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

package telemetry

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP endpoint for the tests: it decodes each
// request with the generated types of go.opentelemetry.io/proto/otlp and
// answers what answer says (200 and an empty ExportTraceServiceResponse
// when nil).
type collector struct {
	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	headers  []http.Header
	answer   func(n int, w http.ResponseWriter) // n counts the posts, from 1
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || proto.Unmarshal(b, req) != nil {
		http.Error(w, "not an OTLP/HTTP protobuf export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests = append(c.requests, req)
	c.headers = append(c.headers, r.Header.Clone())
	n, answer := len(c.requests), c.answer
	c.mu.Unlock()
	if answer != nil {
		answer(n, w)
		return
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func newCollector(t *testing.T) (*collector, string) {
	c := &collector{}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL + "/v1/traces"
}

// TestOTLPEncodingMatchesTheProto: spans the SDK made — a server span
// under a remote parent with a tracestate, attributes of every type (the
// zero values too), events, a link, an error status, a child — reach the
// collector as the official generated types decode them, field for field
// what the SDK's own exporter writes (otlptrace v1.47.0's tracetransform,
// restated below with the generated types).
func TestOTLPEncodingMatchesTheProto(t *testing.T) {
	col, url := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=se%20cret, bad key=1")
	exp := newOTLP(url, "test")
	mem := tracetest.NewInMemoryExporter()
	res := resource.NewSchemaless(attribute.String("service.name", "gantry"), attribute.String("service.version", "test"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem), sdktrace.WithResource(res))
	tr := tp.Tracer("github.com/gantryhq/gantry", trace.WithInstrumentationVersion("v1"))

	ts, _ := trace.ParseTraceState("vendor=x")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	ctx, span := tr.Start(ctx, "POST /v1/chat/completions", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithLinks(trace.Link{SpanContext: remote, Attributes: []attribute.KeyValue{attribute.Int("n", 1)}}))
	span.SetAttributes(
		attribute.Bool("b", true), attribute.Bool("b0", false),
		attribute.Int64("i", -7), attribute.Int64("i0", 0),
		attribute.Float64("f", 0.25), attribute.Float64("f0", 0), attribute.Float64("nan", math.NaN()),
		attribute.String("s", "ä"), attribute.String("s0", ""),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, 0, -1}),
		attribute.Float64Slice("fs", []float64{1.5}), attribute.StringSlice("ss", []string{"a", ""}),
		attribute.ByteSlice("bytes", []byte{0, 1}), attribute.Slice("mixed", attribute.IntValue(1), attribute.StringValue("x")),
		attribute.Map("map", attribute.String("k", "v"), attribute.Int("z", 0)),
	)
	span.AddEvent("loading", trace.WithAttributes(attribute.String("phase", "weights")))
	span.AddEvent("bare")
	_, child := tr.Start(ctx, "answer")
	child.End()
	span.SetStatus(codes.Error, "engine failed")
	span.End()

	spans := mem.GetSpans().Snapshots()
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if len(col.requests) != 1 {
		t.Fatalf("%d requests reached the collector, want 1", len(col.requests))
	}
	h := col.headers[0]
	if h.Get("Content-Type") != "application/x-protobuf" || h.Get("X-Api-Key") != "se cret" || h.Get("Bad Key") != "" {
		t.Errorf("headers: %v", h)
	}
	want := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: officialKVs(res.Attributes())},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "github.com/gantryhq/gantry", Version: "v1"},
			Spans: []*tracepb.Span{officialSpan(spans[0]), officialSpan(spans[1])},
		}},
	}}}
	if !proto.Equal(want, col.requests[0]) {
		t.Errorf("the collector decoded\n%s\nwant\n%s", prototext.Format(col.requests[0]), prototext.Format(want))
	}
	// What the restatement says, checked against the proto by hand.
	got := col.requests[0].ResourceSpans[0].ScopeSpans[0].Spans[1]
	if got.Kind != tracepb.Span_SPAN_KIND_SERVER || got.Status.Code != tracepb.Status_STATUS_CODE_ERROR ||
		got.Flags != 0x301 || got.TraceState != "vendor=x" || len(got.ParentSpanId) != 8 {
		t.Errorf("server span: kind %v, status %v, flags %#x, tracestate %q, parent %x", got.Kind, got.Status.Code, got.Flags, got.TraceState, got.ParentSpanId)
	}
}

// officialSpan is otlptrace v1.47.0's tracetransform.span, with the
// generated types.
func officialSpan(s sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	code := map[codes.Code]tracepb.Status_StatusCode{codes.Ok: tracepb.Status_STATUS_CODE_OK, codes.Error: tracepb.Status_STATUS_CODE_ERROR}[s.Status().Code]
	out := &tracepb.Span{
		TraceId: tid[:], SpanId: sid[:], TraceState: sc.TraceState().String(), Name: s.Name(),
		Kind:              tracepb.Span_SpanKind(s.SpanKind()),
		StartTimeUnixNano: uint64(s.StartTime().UnixNano()), EndTimeUnixNano: uint64(s.EndTime().UnixNano()),
		Attributes: officialKVs(s.Attributes()),
		Status:     &tracepb.Status{Code: code, Message: s.Status().Description},
		Flags:      uint32(sc.TraceFlags()) | 0x100,
	}
	if s.Parent().IsRemote() {
		out.Flags |= 0x200
	}
	if p := s.Parent().SpanID(); p.IsValid() {
		out.ParentSpanId = p[:]
	}
	for _, ev := range s.Events() {
		out.Events = append(out.Events, &tracepb.Span_Event{Name: ev.Name, TimeUnixNano: uint64(ev.Time.UnixNano()), Attributes: officialKVs(ev.Attributes)})
	}
	for _, l := range s.Links() {
		lt, ls := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		f := uint32(l.SpanContext.TraceFlags()) | 0x100
		if l.SpanContext.IsRemote() {
			f |= 0x200
		}
		out.Links = append(out.Links, &tracepb.Span_Link{TraceId: lt[:], SpanId: ls[:], TraceState: l.SpanContext.TraceState().String(),
			Attributes: officialKVs(l.Attributes), Flags: f})
	}
	return out
}

func officialKVs(kvs []attribute.KeyValue) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for _, kv := range kvs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: officialValue(kv.Value)})
	}
	return out
}

func officialValue(v attribute.Value) *commonpb.AnyValue {
	arr := func(vs []attribute.Value) *commonpb.AnyValue {
		a := &commonpb.ArrayValue{}
		for _, x := range vs {
			a.Values = append(a.Values, officialValue(x))
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: a}}
	}
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BYTESLICE:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}}
	case attribute.BOOLSLICE:
		return arr(each(v.AsBoolSlice(), attribute.BoolValue))
	case attribute.INT64SLICE:
		return arr(each(v.AsInt64Slice(), attribute.Int64Value))
	case attribute.FLOAT64SLICE:
		return arr(each(v.AsFloat64Slice(), attribute.Float64Value))
	case attribute.STRINGSLICE:
		return arr(each(v.AsStringSlice(), attribute.StringValue))
	case attribute.SLICE:
		return arr(v.AsSlice())
	case attribute.MAP:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: officialKVs(v.AsMap())}}}
	}
	return &commonpb.AnyValue{}
}

func each[T any](xs []T, f func(T) attribute.Value) []attribute.Value {
	var out []attribute.Value
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

// TestOTLPGroupsByResourceAndScope: spans of two scopes under one
// resource are one ResourceSpans with two ScopeSpans, each span in its own.
func TestOTLPGroupsByResourceAndScope(t *testing.T) {
	var stubs tracetest.SpanStubs
	for i, scope := range []string{"a", "b", "a"} {
		stubs = append(stubs, tracetest.SpanStub{Name: string(rune('x' + i)), Resource: resource.Empty(),
			InstrumentationScope: instrumentation.Scope{Name: scope},
			SpanContext:          trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(i + 1)}})})
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(appendExportRequest(nil, stubs.Snapshots()), req); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				got = append(got, ss.Scope.Name+":"+s.Name)
			}
		}
	}
	if len(req.ResourceSpans) != 1 || strings.Join(got, " ") != "a:x a:z b:y" {
		t.Errorf("%d resources; scope:span %v", len(req.ResourceSpans), got)
	}
}

// TestOTLPRetries: 503 and 429 are tried again (Retry-After honoured),
// 400 is not, and a partial success is an error that is not retried.
func TestOTLPRetries(t *testing.T) {
	spans := tracetest.SpanStubs{{Name: "x", SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})}}.Snapshots()
	for _, tc := range []struct {
		name   string
		answer func(n int, w http.ResponseWriter)
		posts  int
		err    string
	}{
		{"busy, then taken", func(n int, w http.ResponseWriter) {
			switch n {
			case 1:
				w.WriteHeader(http.StatusServiceUnavailable)
			case 2:
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
			default:
				w.WriteHeader(http.StatusOK)
			}
		}, 3, ""},
		{"bad data", func(n int, w http.ResponseWriter) { http.Error(w, "no such thing", http.StatusBadRequest) }, 1, "400 Bad Request: no such thing"},
		{"partial success", func(n int, w http.ResponseWriter) {
			out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "too old"}})
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(out)
		}, 1, "rejected 1 spans: too old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col, url := newCollector(t)
			col.answer = tc.answer
			exp := newOTLP(url, "test")
			exp.first = time.Millisecond
			err := exp.ExportSpans(context.Background(), spans)
			if len(col.requests) != tc.posts || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("%d posts, err %v; want %d posts, err containing %q", len(col.requests), err, tc.posts, tc.err)
			}
		})
	}
}

// TestOTLPShutdownEndsRetries: an export whose collector is busy gives
// up when the exporter shuts down, without waiting out its backoff.
func TestOTLPShutdownEndsRetries(t *testing.T) {
	col, url := newCollector(t)
	posted := make(chan struct{}, 1)
	col.answer = func(_ int, w http.ResponseWriter) {
		w.WriteHeader(http.StatusServiceUnavailable)
		select {
		case posted <- struct{}{}:
		default:
		}
	}
	exp := newOTLP(url, "test") // the first backoff is 5 s
	spans := tracetest.SpanStubs{{Name: "x"}}.Snapshots()
	done := make(chan error)
	go func() { done <- exp.ExportSpans(context.Background(), spans) }()
	<-posted
	exp.Shutdown(context.Background())
	if err := <-done; err == nil || len(col.requests) != 1 {
		t.Errorf("export after shutdown: %v, after %d posts (want an error after 1)", err, len(col.requests))
	}
}

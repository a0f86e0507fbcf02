package telemetry

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The field numbers of the OTLP messages gantry writes, from
// github.com/open-telemetry/opentelemetry-proto v1.9.0:
// opentelemetry/proto/collector/trace/v1/trace_service.proto,
// opentelemetry/proto/trace/v1/trace.proto,
// opentelemetry/proto/common/v1/common.proto and
// opentelemetry/proto/resource/v1/resource.proto. What the SDK's spans
// carry goes where the SDK's own exporter puts it (otlptrace v1.47.0,
// internal/tracetransform); the unit test decodes the result with the
// generated types of go.opentelemetry.io/proto/otlp.
const (
	requestResourceSpans = 1 // ExportTraceServiceRequest.resource_spans
	responsePartial      = 1 // ExportTraceServiceResponse.partial_success
	partialRejected      = 1 // ExportTracePartialSuccess.rejected_spans (int64)
	partialMessage       = 2 // ExportTracePartialSuccess.error_message

	resourceSpansResource  = 1 // ResourceSpans.resource
	resourceSpansScopes    = 2 // ResourceSpans.scope_spans
	resourceSpansSchemaURL = 3 // ResourceSpans.schema_url
	scopeSpansScope        = 1 // ScopeSpans.scope
	scopeSpansSpans        = 2 // ScopeSpans.spans
	scopeSpansSchemaURL    = 3 // ScopeSpans.schema_url

	spanTraceID           = 1  // Span.trace_id (bytes)
	spanSpanID            = 2  // Span.span_id (bytes)
	spanTraceState        = 3  // Span.trace_state
	spanParentSpanID      = 4  // Span.parent_span_id (bytes)
	spanName              = 5  // Span.name
	spanKind              = 6  // Span.kind (SpanKind)
	spanStart             = 7  // Span.start_time_unix_nano (fixed64)
	spanEnd               = 8  // Span.end_time_unix_nano (fixed64)
	spanAttributes        = 9  // Span.attributes
	spanDroppedAttributes = 10 // Span.dropped_attributes_count
	spanEvents            = 11 // Span.events
	spanDroppedEvents     = 12 // Span.dropped_events_count
	spanLinks             = 13 // Span.links
	spanDroppedLinks      = 14 // Span.dropped_links_count
	spanStatus            = 15 // Span.status
	spanFlags             = 16 // Span.flags (fixed32)

	eventTime              = 1 // Span.Event.time_unix_nano (fixed64)
	eventName              = 2 // Span.Event.name
	eventAttributes        = 3 // Span.Event.attributes
	eventDroppedAttributes = 4 // Span.Event.dropped_attributes_count

	linkTraceID           = 1 // Span.Link.trace_id
	linkSpanID            = 2 // Span.Link.span_id
	linkTraceState        = 3 // Span.Link.trace_state
	linkAttributes        = 4 // Span.Link.attributes
	linkDroppedAttributes = 5 // Span.Link.dropped_attributes_count
	linkFlags             = 6 // Span.Link.flags (fixed32)

	statusMessage = 2 // Status.message
	statusCode    = 3 // Status.code (StatusCode: 1 OK, 2 ERROR)

	// SpanFlags: the low 8 bits are the W3C trace flags.
	flagsHasIsRemote = 0x100 // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
	flagsIsRemote    = 0x200 // SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK

	keyValueKey   = 1 // KeyValue.key
	keyValueValue = 2 // KeyValue.value
	anyString     = 1 // AnyValue.string_value
	anyBool       = 2 // AnyValue.bool_value
	anyInt        = 3 // AnyValue.int_value
	anyDouble     = 4 // AnyValue.double_value
	anyArray      = 5 // AnyValue.array_value
	anyKVList     = 6 // AnyValue.kvlist_value
	anyBytes      = 7 // AnyValue.bytes_value
	listValues    = 1 // ArrayValue.values, KeyValueList.values

	scopeName       = 1 // InstrumentationScope.name
	scopeVersion    = 2 // InstrumentationScope.version
	scopeAttributes = 3 // InstrumentationScope.attributes

	resourceAttributes = 1 // Resource.attributes
)

// scopeKey groups spans as ScopeSpans do: by resource and by the
// instrumentation scope that made them.
type scopeKey struct {
	res   attribute.Distinct
	scope instrumentation.Scope
}

// appendExportRequest appends the ExportTraceServiceRequest of spans: a
// ResourceSpans per resource, in it a ScopeSpans per scope, in the order
// the spans came.
func appendExportRequest(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	var resources []*resource.Resource
	var keys []scopeKey
	byScope := map[scopeKey][]sdktrace.ReadOnlySpan{}
	seen := map[attribute.Distinct]bool{}
	for _, s := range spans {
		if s == nil {
			continue
		}
		k := scopeKey{s.Resource().Equivalent(), s.InstrumentationScope()}
		if !seen[k.res] {
			seen[k.res] = true
			resources = append(resources, s.Resource())
		}
		if _, ok := byScope[k]; !ok {
			keys = append(keys, k)
		}
		byScope[k] = append(byScope[k], s)
	}
	e := encoder{b}
	for _, res := range resources {
		e.message(requestResourceSpans, func() {
			e.message(resourceSpansResource, func() { e.attributes(resourceAttributes, res.Attributes()) })
			for _, k := range keys {
				if k.res != res.Equivalent() {
					continue
				}
				e.message(resourceSpansScopes, func() {
					if k.scope != (instrumentation.Scope{}) {
						e.message(scopeSpansScope, func() {
							e.str(scopeName, k.scope.Name)
							e.str(scopeVersion, k.scope.Version)
							e.attributes(scopeAttributes, k.scope.Attributes.ToSlice())
						})
					}
					for _, s := range byScope[k] {
						e.message(scopeSpansSpans, func() { e.span(s) })
					}
					e.str(scopeSpansSchemaURL, k.scope.SchemaURL)
				})
			}
			e.str(resourceSpansSchemaURL, res.SchemaURL())
		})
	}
	return e.b
}

// encoder appends protobuf fields to b; a message's length is written in
// front of it once it is complete.
type encoder struct{ b []byte }

// message appends field num holding the message body writes.
func (e *encoder) message(num protowire.Number, body func()) {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	at := len(e.b)
	body()
	n := len(e.b) - at
	k := protowire.SizeVarint(uint64(n))
	e.b = append(e.b, make([]byte, k)...)
	copy(e.b[at+k:], e.b[at:at+n])
	protowire.AppendVarint(e.b[at:at], uint64(n))
}

// str appends a string field; proto3 leaves an empty one out.
func (e *encoder) str(num protowire.Number, s string) {
	if s != "" {
		e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
		e.b = protowire.AppendString(e.b, s)
	}
}

func (e *encoder) bytes(num protowire.Number, v []byte) {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, v)
}

func (e *encoder) varint(num protowire.Number, v uint64) {
	if v != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, v)
	}
}

func (e *encoder) fixed64(num protowire.Number, v uint64) {
	if v != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.Fixed64Type)
		e.b = protowire.AppendFixed64(e.b, v)
	}
}

func (e *encoder) fixed32(num protowire.Number, v uint32) {
	if v != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.Fixed32Type)
		e.b = protowire.AppendFixed32(e.b, v)
	}
}

// span appends a Span's fields.
func (e *encoder) span(s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	e.bytes(spanTraceID, tid[:])
	e.bytes(spanSpanID, sid[:])
	e.str(spanTraceState, sc.TraceState().String())
	if p := s.Parent().SpanID(); p.IsValid() {
		e.bytes(spanParentSpanID, p[:])
	}
	e.str(spanName, s.Name())
	// trace.SpanKind's values are the proto's SpanKind (its doc says so).
	e.varint(spanKind, uint64(s.SpanKind()))
	e.fixed64(spanStart, unixNano(s.StartTime().UnixNano()))
	e.fixed64(spanEnd, unixNano(s.EndTime().UnixNano()))
	e.attributes(spanAttributes, s.Attributes())
	e.varint(spanDroppedAttributes, count(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		e.message(spanEvents, func() {
			e.fixed64(eventTime, unixNano(ev.Time.UnixNano()))
			e.str(eventName, ev.Name)
			e.attributes(eventAttributes, ev.Attributes)
			e.varint(eventDroppedAttributes, count(ev.DroppedAttributeCount))
		})
	}
	e.varint(spanDroppedEvents, count(s.DroppedEvents()))
	for _, l := range s.Links() {
		e.message(spanLinks, func() {
			lt, ls := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			e.bytes(linkTraceID, lt[:])
			e.bytes(linkSpanID, ls[:])
			e.str(linkTraceState, l.SpanContext.TraceState().String())
			e.attributes(linkAttributes, l.Attributes)
			e.varint(linkDroppedAttributes, count(l.DroppedAttributeCount))
			e.fixed32(linkFlags, flags(l.SpanContext.TraceFlags(), l.SpanContext))
		})
	}
	e.varint(spanDroppedLinks, count(s.DroppedLinks()))
	st := s.Status()
	e.message(spanStatus, func() {
		e.str(statusMessage, st.Description)
		// codes.Code counts Error 1, Ok 2; the proto's StatusCode OK 1, ERROR 2.
		switch st.Code {
		case codes.Ok:
			e.varint(statusCode, 1)
		case codes.Error:
			e.varint(statusCode, 2)
		}
	})
	e.fixed32(spanFlags, flags(sc.TraceFlags(), s.Parent()))
}

// flags are a span's or link's SpanFlags: the W3C trace flags, and
// whether its parent (a link's context) is remote, which is always known.
func flags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | flagsHasIsRemote
	if parent.IsRemote() {
		f |= flagsIsRemote
	}
	return f
}

func unixNano(ns int64) uint64 { return uint64(max(ns, 0)) }

func count(n int) uint64 { return uint64(min(max(n, 0), math.MaxUint32)) }

// attributes appends each key-value as field num (a KeyValue).
func (e *encoder) attributes(num protowire.Number, kvs []attribute.KeyValue) {
	for _, kv := range kvs {
		e.message(num, func() {
			e.str(keyValueKey, string(kv.Key))
			e.message(keyValueValue, func() { e.value(kv.Value) })
		})
	}
}

// value appends an AnyValue's fields. The value is a oneof: its field is
// written even when it holds the zero value (an empty string, 0, false).
func (e *encoder) value(v attribute.Value) {
	switch v.Type() {
	case attribute.BOOL:
		e.b = protowire.AppendTag(e.b, anyBool, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		e.b = protowire.AppendTag(e.b, anyInt, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		e.b = protowire.AppendTag(e.b, anyDouble, protowire.Fixed64Type)
		e.b = protowire.AppendFixed64(e.b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		e.b = protowire.AppendTag(e.b, anyString, protowire.BytesType)
		e.b = protowire.AppendString(e.b, v.AsString())
	case attribute.BYTESLICE:
		e.bytes(anyBytes, v.AsByteSlice())
	case attribute.BOOLSLICE:
		array(e, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		array(e, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		array(e, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		array(e, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		array(e, v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		e.message(anyKVList, func() { e.attributes(listValues, v.AsMap()) })
	case attribute.EMPTY:
		// An AnyValue with no value set: what the proto says empty is.
	default:
		e.str(anyString, "INVALID") // as the SDK's exporter writes a type it does not know
	}
}

// array appends an ArrayValue of xs, each made a Value by val.
func array[T any](e *encoder, xs []T, val func(T) attribute.Value) {
	e.message(anyArray, func() {
		for _, x := range xs {
			e.message(listValues, func() { e.value(val(x)) })
		}
	})
}

// partialSuccess reads an ExportTraceServiceResponse: the spans the
// collector rejected and its message (0 and "" when it took them all).
func partialSuccess(b []byte) (rejected int64, msg string) {
	ps, ok := bytesField(b, responsePartial)
	if !ok {
		return 0, ""
	}
	for len(ps) > 0 {
		num, typ, n := protowire.ConsumeTag(ps)
		if n < 0 {
			return rejected, msg
		}
		ps = ps[n:]
		switch {
		case num == partialRejected && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(ps)
			if m < 0 {
				return rejected, msg
			}
			rejected, n = int64(v), m
		case num == partialMessage && typ == protowire.BytesType:
			v, m := protowire.ConsumeString(ps)
			if m < 0 {
				return rejected, msg
			}
			msg, n = v, m
		default:
			n = protowire.ConsumeFieldValue(num, typ, ps)
		}
		if n < 0 {
			return rejected, msg
		}
		ps = ps[n:]
	}
	return rejected, msg
}

// bytesField is the last length-delimited field num of message b.
func bytesField(b []byte, num protowire.Number) (v []byte, found bool) {
	for len(b) > 0 {
		n, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return v, found
		}
		b = b[k:]
		if n == num && typ == protowire.BytesType {
			x, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return v, found
			}
			v, found, k = x, true, m
		} else {
			k = protowire.ConsumeFieldValue(n, typ, b)
		}
		if k < 0 {
			return v, found
		}
		b = b[k:]
	}
	return v, found
}

// stringField is field num of message b as a string.
func stringField(b []byte, num protowire.Number) (string, bool) {
	v, ok := bytesField(b, num)
	return string(v), ok
}

package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpExporter sends the SDK's finished spans to a collector over OTLP/HTTP
// with binary protobuf, as opentelemetry-proto's docs/specification.md
// ("OTLP/HTTP", v1.9.0) says: a POST to /v1/traces, Content-Type
// application/x-protobuf, the body an ExportTraceServiceRequest; 2xx is
// accepted (a partial_success in the answer is an error to report, not to
// retry); 429, 502, 503 and 504, and a connection that failed, are retried
// with a growing, jittered backoff that honours Retry-After; anything else
// is not retried.
//
// It replaces the SDK's otlptracehttp exporter, whose generated
// collector package carries gRPC's service stubs: linking it made the
// binary 7.6 MB larger and an idle gantry 3.9 MB larger in RSS, for a
// message of a dozen fields that protowire writes directly (otlpenc.go).
type otlpExporter struct {
	url    string
	header http.Header // sent with every export: the content type, OTEL_EXPORTER_OTLP_*HEADERS
	client *http.Client
	first  time.Duration // the first retry's backoff (tests shorten it)

	stop     chan struct{} // closed by Shutdown: a retry that waits gives up
	stopOnce sync.Once
}

// The specification's recommended limits, and the official exporter's
// timeout and retry policy (otlptracehttp v1.47.0: 10 s per request, backoff
// from 5 s to 30 s, a minute in all).
const (
	maxRequestBytes  = 64 << 20
	maxResponseBytes = 4 << 20
	requestTimeout   = 10 * time.Second
	firstBackoff     = 5 * time.Second
	maxBackoff       = 30 * time.Second
	maxRetrying      = time.Minute
)

func newOTLP(url, version string) *otlpExporter {
	h := http.Header{"Content-Type": {"application/x-protobuf"}, "User-Agent": {"gantry/" + version}}
	for k, v := range envHeaders() {
		h.Set(k, v)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &otlpExporter{url: url, header: h, client: &http.Client{Transport: tr, Timeout: requestTimeout},
		first: firstBackoff, stop: make(chan struct{})}
}

// envHeaders are the headers OTEL_EXPORTER_OTLP_HEADERS and then
// OTEL_EXPORTER_OTLP_TRACES_HEADERS name (a collector's key, for one),
// read as the SDK's exporters read them: key=value pairs separated by
// commas, values URL-encoded (opentelemetry-specification,
// protocol/exporter.md; otlptracehttp's envconfig: values unescaped with
// url.PathUnescape). A malformed pair is skipped.
func envHeaders() map[string]string {
	out := map[string]string{}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		for _, pair := range strings.Split(os.Getenv(name), ",") {
			k, v, ok := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				continue
			}
			if u, err := url.PathUnescape(v); err == nil && headerName(k) {
				out[k] = strings.TrimSpace(u)
			}
		}
	}
	return out
}

// ExportSpans sends spans in one request (sdktrace.SpanExporter).
func (e *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	body := appendExportRequest(nil, spans)
	if len(body) > maxRequestBytes {
		return fmt.Errorf("telemetry: %d spans make a request of %d bytes, over the %d a collector is asked to take; they are dropped", len(spans), len(body), maxRequestBytes)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return e.send(ctx, body)
}

// Shutdown ends the retries that wait and closes the idle connections
// (sdktrace.SpanExporter). The SDK exports nothing after it.
func (e *otlpExporter) Shutdown(ctx context.Context) error {
	e.stopOnce.Do(func() { close(e.stop) })
	e.client.CloseIdleConnections()
	return ctx.Err()
}

// send posts body until the collector takes it, a failure is not worth
// retrying, or the retries' minute (or ctx) is over.
func (e *otlpExporter) send(ctx context.Context, body []byte) error {
	giveUp := time.Now().Add(maxRetrying)
	backoff := e.first
	for {
		asked, err := e.post(ctx, body)
		if err == nil || asked < 0 {
			return err
		}
		// Jitter of ±50 %, and never sooner than the collector asked.
		wait := max(asked, backoff/2+rand.N(backoff))
		if time.Now().Add(wait).After(giveUp) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// post sends body once. retry is how long the collector asked to wait
// before the next try (0: it did not say), or -1 when the failure is not
// to be retried.
func (e *otlpExporter) post(ctx context.Context, body []byte) (retry time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("telemetry: %w", err)
	}
	maps.Copy(req.Header, e.header)
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, fmt.Errorf("telemetry: send spans to %s: %w", e.url, err)
		}
		return 0, fmt.Errorf("telemetry: send spans to %s: %w", e.url, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, fmt.Errorf("telemetry: read %s's answer: %w", e.url, err)
	}
	if len(answer) > maxResponseBytes {
		return -1, fmt.Errorf("telemetry: %s answered with more than %d bytes; the spans may not have been taken", e.url, maxResponseBytes)
	}
	protobuf := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf")
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if !protobuf {
			return -1, nil
		}
		if n, msg := partialSuccess(answer); n != 0 || msg != "" {
			return -1, fmt.Errorf("telemetry: %s rejected %d spans: %s", e.url, n, msg)
		}
		return -1, nil
	case code == http.StatusTooManyRequests, code == http.StatusBadGateway, code == http.StatusServiceUnavailable, code == http.StatusGatewayTimeout:
		return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("telemetry: %s answered %s: %s", e.url, resp.Status, failure(answer, protobuf))
	default:
		return -1, fmt.Errorf("telemetry: %s answered %s: %s", e.url, resp.Status, failure(answer, protobuf))
	}
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// failure is what a failed answer says: a google.rpc.Status's message
// (field 2, as the specification's "Failures" asks the body to be), else
// the start of the body as text.
func failure(b []byte, protobuf bool) string {
	if protobuf {
		if msg, ok := stringField(b, 2); ok {
			return msg
		}
	}
	s := strings.TrimSpace(string(b[:min(len(b), 200)]))
	if s == "" {
		return "(no body)"
	}
	return s
}

// headerName reports whether k is a valid header name (RFC 9110's token).
func headerName(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return k != ""
}

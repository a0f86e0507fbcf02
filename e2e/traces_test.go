package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// jaegerBin is the real Jaeger (v2, built on the OpenTelemetry collector)
// that ./test.sh builds from its Go module (github.com/jaegertracing/jaeger
// v1.75.0, cmd/jaeger) under ~/.cache/gantry-test/jaeger.
func jaegerBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("GANTRY_JAEGER")
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "gantry-test", "jaeger", "jaeger")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Jaeger (%v): run ./test.sh, which builds it from its Go module", err)
	}
	return p
}

// jaegerConfig is the all-in-one's shape (cmd/jaeger/internal/all-in-one.yaml
// of v1.75.0) cut to what the tests use, on free ports: the OTLP receiver
// (HTTP and gRPC), the in-memory store, the query API; no metrics port.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics: {level: none}
extensions:
  jaeger_query:
    storage: {traces: mem}
    http: {endpoint: "127.0.0.1:QUERY_HTTP"}
    grpc: {endpoint: "127.0.0.1:QUERY_GRPC"}
  jaeger_storage:
    backends:
      mem:
        memory: {max_traces: 10000}
receivers:
  otlp:
    protocols:
      http: {endpoint: "127.0.0.1:OTLP_HTTP"}
      grpc: {endpoint: "127.0.0.1:OTLP_GRPC"}
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

// jaeger is a running Jaeger: where spans go (OTLP/HTTP and gRPC) and its
// query API.
type jaeger struct {
	otlpHTTP, otlpGRPC, query string
}

func startJaeger(t *testing.T) jaeger {
	t.Helper()
	bin := jaegerBin(t)
	ports := map[string]int{}
	cfg := jaegerConfig
	for _, k := range []string{"QUERY_HTTP", "QUERY_GRPC", "OTLP_HTTP", "OTLP_GRPC"} {
		ports[k] = testbin.FreePort(t)
		cfg = strings.ReplaceAll(cfg, k, fmt.Sprint(ports[k]))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jaeger.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := newSyncBuffer()
	cmd := exec.Command(bin, "--config", filepath.Join(dir, "jaeger.yaml"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("jaeger's output:\n%s", out.String())
		}
	})
	j := jaeger{otlpHTTP: fmt.Sprintf("http://127.0.0.1:%d", ports["OTLP_HTTP"]), otlpGRPC: fmt.Sprintf("127.0.0.1:%d", ports["OTLP_GRPC"]),
		query: fmt.Sprintf("http://127.0.0.1:%d", ports["QUERY_HTTP"])}
	testbin.WaitHTTP(t, j.query+"/api/services", 60*time.Second)
	return j
}

// span is one span as Jaeger's query API v3 answers it (OTLP's JSON:
// cmd/query/app/apiv3/http_gateway.go, GET /api/v3/traces/{trace_id}).
type span struct {
	Service      string
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Start        string `json:"startTimeUnixNano"`
	End          string `json:"endTimeUnixNano"`
	Events       []struct {
		Name string `json:"name"`
	} `json:"events"`
	Attributes []struct {
		Key   string         `json:"key"`
		Value map[string]any `json:"value"`
	} `json:"attributes"`
}

func (s span) attr(key string) any {
	for _, a := range s.Attributes {
		if a.Key == key {
			for _, v := range a.Value {
				return v
			}
		}
	}
	return nil
}

// trace reads a trace back from Jaeger's query API, waiting until it has
// the spans named in want (exporters send in batches).
func (j jaeger) trace(t *testing.T, traceID string, want ...string) []span {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		spans := j.read(t, traceID)
		have := map[string]bool{}
		for _, s := range spans {
			have[s.Name] = true
		}
		missing := slices.DeleteFunc(slices.Clone(want), func(n string) bool { return have[n] })
		if len(missing) == 0 {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s in Jaeger: %d spans, none named %v", traceID, len(spans), missing)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (j jaeger) read(t *testing.T, traceID string) []span {
	resp, err := http.Get(j.query + "/api/v3/traces/" + traceID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var res struct {
		Result struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []struct {
						Key   string            `json:"key"`
						Value map[string]string `json:"value"`
					} `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []span `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("Jaeger's answer: %v\n%s", err, b)
	}
	var out []span
	for _, rs := range res.Result.ResourceSpans {
		svc := ""
		for _, a := range rs.Resource.Attributes {
			if a.Key == "service.name" {
				svc = a.Value["stringValue"]
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				s.Service = svc
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(a, b int) bool { return nanos(out[a].Start) < nanos(out[b].Start) })
	return out
}

func nanos(s string) int64 {
	var n int64
	fmt.Sscan(s, &n)
	return n
}

// newTraceparent is a W3C traceparent of a new sampled trace, and its id.
func newTraceparent() (header, traceID string) {
	var b [24]byte
	rand.Read(b[:])
	traceID = hex.EncodeToString(b[:16])
	return "00-" + traceID + "-" + hex.EncodeToString(b[16:]) + "-01", traceID
}

// byName finds a trace's span by name (the first that starts).
func byName(t *testing.T, spans []span, name string) span {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	var names []string
	for _, s := range spans {
		names = append(names, s.Service+":"+s.Name)
	}
	t.Fatalf("no %q span among %v", name, names)
	return span{}
}

// TestTracesInJaeger: gantry with telemetry on sends a cold start's trace
// to a real Jaeger over OTLP/HTTP; read back through Jaeger's query API,
// the request's span (a child of the client's traceparent) has queue →
// start (the engine's load phases as events) → answer, in order, with the
// answer's tokens.
func TestTracesInJaeger(t *testing.T) {
	j := startJaeger(t)
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
telemetry: {otlp_endpoint: "`+j.otlpHTTP+`", sample: 1.0}
models:
  cold: {engine: sim, memory: 1GiB, args: [--flavor, vllm, --progress, --load-time, 2s, --tokens, "6"]}
`)
	tp, traceID := newTraceparent()
	req, _ := http.NewRequest("POST", d.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"cold","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Traceparent", tp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	spans := j.trace(t, traceID, "POST /v1/chat/completions", "queue", "start", "answer")
	root := byName(t, spans, "POST /v1/chat/completions")
	queue, start, answer := byName(t, spans, "queue"), byName(t, spans, "start"), byName(t, spans, "answer")
	if root.ParentSpanID != tp[36:52] {
		t.Errorf("the request's span's parent is %s, want the client's %s", root.ParentSpanID, tp[36:52])
	}
	if queue.ParentSpanID != root.SpanID || answer.ParentSpanID != root.SpanID || start.ParentSpanID != queue.SpanID {
		t.Errorf("parents: queue→%s answer→%s start→%s (request %s, queue %s)", queue.ParentSpanID, answer.ParentSpanID, start.ParentSpanID, root.SpanID, queue.SpanID)
	}
	if !(nanos(queue.Start) <= nanos(start.Start) && nanos(start.End) <= nanos(answer.Start) && nanos(queue.End) <= nanos(answer.Start)) {
		t.Errorf("not queue → start → answer: queue %s–%s, start %s–%s, answer %s", queue.Start, queue.End, start.Start, start.End, answer.Start)
	}
	if len(start.Events) < 2 {
		t.Errorf("the start's load phases: %+v", start.Events)
	}
	if answer.attr("gen_ai.usage.output_tokens") == nil || start.attr("gantry.model") != "cold" {
		t.Errorf("answer attributes %+v, start %+v", answer.Attributes, start.Attributes)
	}
	t.Logf("trace %s: %d spans; load phases %+v", traceID, len(spans), start.Events)
}

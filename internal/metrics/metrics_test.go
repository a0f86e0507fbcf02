package metrics

import (
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gantryhq/gantry/internal/activity"
)

// TestBothKVNamesPickTheNewOne: a vLLM exporting the old and the new name
// of its KV-cache gauge is reported by the new one, every time (map order
// must not decide).
func TestBothKVNamesPickTheNewOne(t *testing.T) {
	text := `# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="m"} 0.75
vllm:num_requests_running{model_name="m"} 3
`
	for i := 0; i < 50; i++ {
		got := Pick(ParseGauges(strings.NewReader(text), engineNames))
		if len(got) != 2 {
			t.Fatalf("picked %d gauges", len(got))
		}
		for _, p := range got {
			if p.desc == dKV && p.value != 0.75 {
				t.Fatalf("run %d: KV usage %v, want the new name's 0.75", i, p.value)
			}
		}
	}
}

// families parses an exposition with Prometheus's own text parser
// (prometheus/common's expfmt, a test-only import).
func families(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the exposition: %v\n%s", err, text)
	}
	return fams
}

// keysText is the key families' exposition alone.
func keysText(m *Metrics) string {
	var w expo
	m.keys.write(&w)
	return string(w.bytes())
}

// TestKeyUsage: counters per configured key name; a name the config does
// not have (a client's text never becomes a label) counts as "-".
func TestKeyUsage(t *testing.T) {
	m := New("test", nil, nil)
	m.SetKeys([]string{"alice", "key 1"})
	m.KeyUsage(activity.Record{Key: "alice", Status: 200, Tokens: &activity.Tokens{Prompt: 12, Completion: 30}, HeldMS: 1500})
	m.KeyUsage(activity.Record{Key: "alice", Status: 429})
	m.KeyUsage(activity.Record{Key: "mallory", Status: 200, Tokens: &activity.Tokens{Prompt: 1, Completion: 1}})
	want := `# HELP gantry_key_completion_tokens_total Completion tokens of the key's answers, as the engines counted them.
# TYPE gantry_key_completion_tokens_total counter
gantry_key_completion_tokens_total{key="-"} 1
gantry_key_completion_tokens_total{key="alice"} 30
gantry_key_completion_tokens_total{key="key 1"} 0
# HELP gantry_key_engine_seconds_total Seconds the key's requests held an engine, from lease to end.
# TYPE gantry_key_engine_seconds_total counter
gantry_key_engine_seconds_total{key="alice"} 1.5
gantry_key_engine_seconds_total{key="key 1"} 0
# HELP gantry_key_prompt_tokens_total Prompt tokens of the key's answers, as the engines counted them.
# TYPE gantry_key_prompt_tokens_total counter
gantry_key_prompt_tokens_total{key="-"} 1
gantry_key_prompt_tokens_total{key="alice"} 12
gantry_key_prompt_tokens_total{key="key 1"} 0
# HELP gantry_key_requests_total Gateway requests by key name and HTTP status (429: a limit of the key refused it).
# TYPE gantry_key_requests_total counter
gantry_key_requests_total{code="200",key="-"} 1
gantry_key_requests_total{code="200",key="alice"} 1
gantry_key_requests_total{code="429",key="alice"} 1
`
	if got := keysText(m); got != want {
		t.Errorf("key families:\n%s\nwant\n%s", got, want)
	}
}

// TestExposition: a scrape is what Prometheus's parser reads back — the
// request counter with its labels sorted, the histograms' buckets
// cumulative up to +Inf with their sum and count, build info, labels with
// quotes and newlines escaped — gzipped for a scraper that asks, plain
// otherwise.
func TestExposition(t *testing.T) {
	m := New("v1", nil, nil)
	m.Request("m", "/v1/chat/completions", 200, 30*time.Millisecond, 4*time.Millisecond, 0)
	m.Request("m", "/v1/chat/completions", 200, 2*time.Second, 0, 0)
	m.Request(`a "b"`+"\n", "/v1/embeddings", 503, 500*time.Millisecond, 500*time.Millisecond, 0)
	m.Started("m", 7*time.Second)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL) // Go's client asks for gzip and unpacks it
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" || !resp.Uncompressed {
		t.Errorf("Content-Type %q, gzipped %v", ct, resp.Uncompressed)
	}
	fams := families(t, body)
	req := fams["gantry_requests_total"]
	if req.GetType() != dto.MetricType_COUNTER || len(req.Metric) != 2 {
		t.Fatalf("gantry_requests_total: %v", req)
	}
	if !strings.Contains(string(body), `gantry_requests_total{code="200",model="m",route="/v1/chat/completions"} 2`) ||
		!strings.Contains(string(body), `model="a \"b\"\n"`) {
		t.Errorf("request lines:\n%s", body)
	}
	h := fams["gantry_request_duration_seconds"]
	var hm *dto.Histogram
	for _, x := range h.GetMetric() {
		if x.GetLabel()[0].GetValue() == "m" {
			hm = x.GetHistogram()
		}
	}
	if h.GetType() != dto.MetricType_HISTOGRAM || hm == nil || hm.GetSampleCount() != 2 || math.Abs(hm.GetSampleSum()-2.03) > 1e-9 {
		t.Fatalf("duration histogram: %v", h)
	}
	for _, b := range hm.GetBucket() {
		want := map[bool]uint64{true: 1, false: 0}[b.GetUpperBound() >= 0.03] + map[bool]uint64{true: 1, false: 0}[b.GetUpperBound() >= 2]
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if !strings.Contains(string(body), `gantry_request_duration_seconds_bucket{model="m",route="/v1/chat/completions",le="+Inf"} 2`) {
		t.Errorf("no +Inf bucket:\n%s", body)
	}
	if bi := fams["gantry_build_info"]; len(bi.GetMetric()) != 1 || bi.Metric[0].GetGauge().GetValue() != 1 {
		t.Errorf("build info: %v", bi)
	}
	if _, ok := fams["gantry_time_to_first_byte_seconds"]; !ok {
		t.Error("no TTFB histogram")
	}
	if _, ok := fams["gantry_scheduler_events_total"]; ok {
		t.Error("a family without series is shown")
	}
	// A scraper that does not take gzip gets the text as it is.
	r := httptest.NewRecorder()
	m.Handler().ServeHTTP(r, httptest.NewRequest("GET", "/metrics", nil))
	if r.Header().Get("Content-Encoding") != "" || !bytes.HasPrefix(r.Body.Bytes(), []byte("# HELP ")) {
		t.Errorf("plain scrape: %q, %.40q", r.Header().Get("Content-Encoding"), r.Body.String())
	}
	r = httptest.NewRecorder()
	q := httptest.NewRequest("GET", "/metrics", nil)
	q.Header.Set("Accept-Encoding", "gzip")
	m.Handler().ServeHTTP(r, q)
	zr, err := gzip.NewReader(r.Body)
	if err != nil || r.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip scrape: %v %q", err, r.Header().Get("Content-Encoding"))
	}
	if unz, _ := io.ReadAll(zr); len(families(t, unz)) != len(fams) {
		t.Error("the gzipped scrape differs")
	}
}

// TestRuntimeFamiliesAsClientGolang: the go_* and process_* families have
// the names, help and types client_golang v1.25's collectors gave them
// (testdata), in its order, each with a sample, and values that are this
// process's.
func TestRuntimeFamiliesAsClientGolang(t *testing.T) {
	want, err := os.ReadFile("testdata/client_golang_v1.25.txt")
	if err != nil {
		t.Fatal(err)
	}
	var w expo
	writeGo(&w)
	writeProcess(&w)
	text := w.bytes()
	var got, wantLines []string
	for l := range strings.Lines(string(text)) {
		if strings.HasPrefix(l, "# ") {
			got = append(got, l)
		}
	}
	for l := range strings.Lines(string(want)) {
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			wantLines = append(wantLines, l)
		}
	}
	if strings.Join(got, "") != strings.Join(wantLines, "") {
		t.Errorf("HELP and TYPE lines:\n%s\nwant (client_golang v1.25):\n%s", strings.Join(got, ""), strings.Join(wantLines, ""))
	}
	fams := families(t, text)
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			t.Errorf("%s has no sample", name)
		}
	}
	val := func(name string) float64 {
		m := fams[name].GetMetric()[0]
		return m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	if g := val("go_goroutines"); g < 1 || val("go_threads") < 1 || val("go_sched_gomaxprocs_threads") < 1 {
		t.Errorf("goroutines %v, threads %v, gomaxprocs %v", g, val("go_threads"), val("go_sched_gomaxprocs_threads"))
	}
	if rss := val("process_resident_memory_bytes"); rss < 1<<20 || val("process_open_fds") < 3 || val("process_max_fds") < 3 {
		t.Errorf("rss %v, open fds %v, max fds %v", rss, val("process_open_fds"), val("process_max_fds"))
	}
	if st := val("process_start_time_seconds"); math.Abs(st-float64(time.Now().Unix())) > 3600 {
		t.Errorf("start time %v is not this process's", st)
	}
	if s := fams["go_gc_duration_seconds"]; s.GetType() != dto.MetricType_SUMMARY || len(s.Metric[0].GetSummary().GetQuantile()) != 5 {
		t.Errorf("go_gc_duration_seconds: %v", s)
	}
}

// BenchmarkRequest is what the metrics add to a gateway request, from
// parallel goroutines.
func BenchmarkRequest(b *testing.B) {
	m := New("test", nil, nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("model", "/v1/chat/completions", 200, 30*time.Millisecond, 4*time.Millisecond, 0)
		}
	})
}

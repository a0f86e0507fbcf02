package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/telemetry"
)

// hundredKeys is an auth: section of 100 named keys, each with its models
// and all three limits (never reached by the benchmark's pace).
func hundredKeys() config.Auth {
	a := config.Auth{Keys: map[string]*config.Key{}}
	for i := 0; i < 100; i++ {
		a.Keys[fmt.Sprintf("user%02d", i)] = &config.Key{Key: fmt.Sprintf("sk-bench-%02d-0123456789abcdef", i),
			Models: []string{"qwen*", "scout"}, RPM: 1 << 30, TPM: 1 << 30, Concurrency: 1 << 20, Priority: config.PriorityInteractive}
	}
	return a
}

// BenchmarkKeysAndTraces sends one small chat request at a time through
// three gateways in front of the same engine, in turn (each goes first,
// second and third as often): without keys, with 100 named keys and their
// limits (the request's key among them), and with tracing at sample 1.0
// (spans exported over OTLP/HTTP to a collector that reads and drops
// them). It reports each one's p50 and what keys and traces add to it;
// tracing off is the first: a nil tracer (one nil check a hook).
func BenchmarkKeysAndTraces(b *testing.B) {
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	b.Cleanup(engine.Close)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // OTLP/HTTP's answer to a full success: 200, an empty body
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(collector.Close)
	s := readyScheduler(b, engine.Listener.Addr().String())
	keys := auth.FromConfig(hundredKeys())
	act, err := activity.Open(activity.Options{OnRecord: func(r activity.Record) {
		if k := keys.ByName(r.Key); k != nil && k.Limit != nil && r.Tokens != nil {
			k.Limit.Spend(time.Now(), r.Tokens.Prompt+r.Tokens.Completion)
		}
	}}) // as the daemon's, with the log off
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { act.Close() })
	tel, err := telemetry.New(&config.Telemetry{OTLPEndpoint: collector.URL, Sample: 1}, "bench", telemetry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tel.Shutdown(context.Background()) })
	serve := func(wrap func(http.Handler) http.Handler, t *telemetry.Tracer) string {
		g := New(s, nil, nil)
		b.Cleanup(g.Close)
		g.SetActivity(act, keys.Name)
		g.SetTracer(t)
		mux := http.NewServeMux()
		g.Register(mux, Wraps{Gateway: wrap})
		srv := httptest.NewServer(mux)
		b.Cleanup(srv.Close)
		return srv.URL
	}
	open := func(h http.Handler) http.Handler { return h }
	urls := [3]string{serve(open, nil), serve(keys.Gateway, nil), serve(open, tel)}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	body := []byte(`{"model":"scout","messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}],"max_tokens":16}`)
	once := func(url string) time.Duration {
		req, _ := http.NewRequest("POST", url+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-bench-57-0123456789abcdef")
		req.Header.Set("Content-Type", "application/json")
		began := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(began)
		if resp.StatusCode != 200 || n != int64(len(answer)) {
			b.Fatalf("%s: %d", url, resp.StatusCode)
		}
		return took
	}
	for i := 0; i < 200; i++ { // warm the connections and pools
		for _, u := range urls {
			once(u)
		}
	}
	var lat [3][]time.Duration
	i := 0
	for b.Loop() {
		for _, k := range [3]int{i % 3, (i + 1) % 3, (i + 2) % 3} {
			lat[k] = append(lat[k], once(urls[k]))
		}
		i++
	}
	var p50 [3]time.Duration
	for k := range lat {
		slices.Sort(lat[k])
		p50[k] = lat[k][len(lat[k])/2]
		b.ReportMetric(float64(p50[k].Nanoseconds())/1e3, "µs-p50-"+[3]string{"plain", "keys", "traced"}[k])
	}
	b.ReportMetric(float64((p50[1]-p50[0]).Nanoseconds())/1e3, "µs-keys-added")
	b.ReportMetric(float64((p50[2]-p50[0]).Nanoseconds())/1e3, "µs-traced-added")
}

// Package metrics is gantry's Prometheus endpoint: its own request,
// scheduler and memory metrics, and, collected when scraped, the engines'
// key gauges under one name each, the GPU telemetry, and Go's and the
// process's families as client_golang named them (expo.go writes the
// text format).
package metrics

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
)

// Metrics holds gantry's metrics and writes them when scraped.
type Metrics struct {
	version  string
	requests *counterVec
	duration *histogramVec
	ttfb     *histogramVec
	starts   *histogramVec
	events   *counterVec
	keys     *keyMetrics
	scrape   *scrape
}

// latencyBuckets span a cached answer (ms) to a long generation (minutes).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// New makes gantry's metrics; s is scraped for the live gauges, gpuFn
// (may be nil) for GPU telemetry.
func New(version string, s *sched.Scheduler, gpuFn func() gpu.Facts) *Metrics {
	return &Metrics{version: version,
		requests: newCounterVec("gantry_requests_total", "Gateway requests by model, route and HTTP status.", "model", "route", "code"),
		duration: newHistogramVec("gantry_request_duration_seconds", "Gateway request time from arrival to the last byte, loading included.",
			latencyBuckets, "model", "route"),
		ttfb: newHistogramVec("gantry_time_to_first_byte_seconds", "Gateway time from arrival to the first response byte (the first token of a stream).",
			latencyBuckets, "model", "route"),
		starts: newHistogramVec("gantry_model_start_duration_seconds", "Time from launching an engine to its readiness.",
			[]float64{.1, .5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200}, "model"),
		events: newCounterVec("gantry_scheduler_events_total", "Scheduler actions: evictions, slot switches, idle stops, fallbacks, failures.", "kind", "model"),
		keys:   newKeyMetrics(),
		scrape: &scrape{s: s, gpu: gpuFn, client: &http.Client{Timeout: 2 * time.Second}},
	}
}

// Handler serves /metrics: Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveExposition(w, r, m.expose()) })
}

// expose writes every family: gantry's own, the live gauges, Go's and the
// process's.
func (m *Metrics) expose() []byte {
	var w expo
	m.requests.write(&w)
	m.duration.write(&w)
	m.ttfb.write(&w)
	m.starts.write(&w)
	m.events.write(&w)
	w.family(desc{"gantry_build_info", "gantry's version; always 1.", "gauge", []string{"version", "goversion"}},
		[]series{{labelKey{m.version, runtime.Version()}, 1}})
	m.keys.write(&w)
	if m.scrape.s != nil {
		m.scrape.collect(&w)
	}
	writeGo(&w)
	writeProcess(&w)
	return w.bytes()
}

// Request records one finished gateway request.
func (m *Metrics) Request(model, route string, code int, total, ttfb time.Duration, _ int) {
	m.requests.add(1, model, route, strconv.Itoa(code))
	m.duration.observe(total.Seconds(), model, route)
	if ttfb > 0 {
		m.ttfb.observe(ttfb.Seconds(), model, route)
	}
}

// Event follows the scheduler's events.
func (m *Metrics) Event(ev status.Event) {
	switch ev.Kind {
	case "state":
		if ev.To == "failed" {
			m.events.add(1, "failure", ev.Model)
		}
	case "eviction", "switch", "idle", "fallback":
		m.events.add(1, string(ev.Kind), ev.Model)
	}
}

// Started records an engine's load time.
func (m *Metrics) Started(model string, d time.Duration) {
	m.starts.observe(d.Seconds(), model)
}

// scrape collects the live gauges when Prometheus scrapes.
type scrape struct {
	s      *sched.Scheduler
	gpu    func() gpu.Facts
	client *http.Client
}

func gaugeDesc(name, help string, labels ...string) *desc {
	return &desc{name, help, "gauge", labels}
}

var (
	dState    = gaugeDesc("gantry_model_state", "1 for the model's current state.", "model", "engine", "state")
	dInflight = gaugeDesc("gantry_model_inflight_requests", "Requests the engine is serving through gantry.", "model")
	dQueued   = gaugeDesc("gantry_model_queued_requests", "Requests waiting for the model to become ready.", "model")
	dReserved = gaugeDesc("gantry_model_memory_reserved_bytes", "Memory the model reserves while it runs.", "model")
	dStarts   = &desc{"gantry_model_starts_total", "Engine starts since gantry started.", "counter", []string{"model"}}
	dBudget   = gaugeDesc("gantry_memory_budget_bytes", "Memory engines may reserve in all (total − reserve).")
	dResAll   = gaugeDesc("gantry_memory_reserved_bytes", "Memory reserved by running models.")
	dTotal    = gaugeDesc("gantry_memory_total_bytes", "Memory the budget is taken from.")
	dRunning  = gaugeDesc("gantry_engine_requests_running", "Requests the engine reports running (vllm:num_requests_running, sglang:num_running_reqs, llamacpp:requests_processing).", "model", "engine")
	dWaiting  = gaugeDesc("gantry_engine_requests_waiting", "Requests the engine reports queued (vllm:num_requests_waiting, sglang:num_queue_reqs, llamacpp:requests_deferred).", "model", "engine")
	dKV       = gaugeDesc("gantry_engine_kv_cache_usage_ratio", "KV-cache use the engine reports, 0 to 1 (vllm:kv_cache_usage_perc, sglang:token_usage, llamacpp:kv_cache_usage_ratio).", "model", "engine")
	dUp       = gaugeDesc("gantry_engine_metrics_up", "1 when the engine's own metrics could be read.", "model", "engine")
	dGPUUsed  = gaugeDesc("gantry_gpu_memory_used_bytes", "GPU memory in use (absent when the GPU does not report it).", "gpu", "name")
	dGPUTotal = gaugeDesc("gantry_gpu_memory_total_bytes", "GPU memory (absent on unified-memory GPUs).", "gpu", "name")
	dGPUUtil  = gaugeDesc("gantry_gpu_utilization_ratio", "GPU utilization, 0 to 1.", "gpu", "name")
	dGPUTemp  = gaugeDesc("gantry_gpu_temperature_celsius", "GPU temperature.", "gpu", "name")
	dGPUPower = gaugeDesc("gantry_gpu_power_watts", "GPU power draw.", "gpu", "name")
)

// engineMetrics maps the engines' metric names (each engine's
// descriptor lists its own) to gantry's one name, in order of preference:
// where an engine exports two names for one gauge (vLLM renamed
// gpu_cache_usage_perc to kv_cache_usage_perc and exported both for a
// while), the first listed is reported, on every scrape.
var engineMetrics = func() []engineMetric {
	var out []engineMetric
	for _, g := range []struct {
		desc  *desc
		names func(engine.Metrics) []string
	}{
		{dRunning, func(m engine.Metrics) []string { return m.Running }},
		{dWaiting, func(m engine.Metrics) []string { return m.Waiting }},
		{dKV, func(m engine.Metrics) []string { return m.KVUsage }},
	} {
		for _, d := range engine.All() {
			for _, n := range g.names(d.Metrics) {
				out = append(out, engineMetric{n, g.desc})
			}
		}
	}
	return out
}()

// engineMetric is one engine metric and gantry's gauge for it.
type engineMetric struct {
	name string
	desc *desc
}

// engineNames is the set of names engineMetrics knows.
var engineNames = func() map[string]bool {
	m := map[string]bool{}
	for _, e := range engineMetrics {
		m[e.name] = true
	}
	return m
}()

// gathered is what one scrape collected, by family; the engines' gauges
// come in from a goroutine per engine.
type gathered struct {
	mu  sync.Mutex
	fam map[*desc][]series
}

func (g *gathered) add(d *desc, v float64, lv ...string) {
	g.mu.Lock()
	g.fam[d] = append(g.fam[d], series{keyOf(lv), v})
	g.mu.Unlock()
}

var states = []string{"stopped", "starting", "ready", "stopping", "failed"}

// collect writes the live gauges: the scheduler's, each ready engine's own
// (read now, every engine at once) and the GPUs'.
func (c *scrape) collect(w *expo) {
	g := &gathered{fam: map[*desc][]series{}}
	st := c.s.Status()
	g.add(dBudget, float64(st.Memory.BudgetBytes))
	g.add(dResAll, float64(st.Memory.ReservedBytes))
	g.add(dTotal, float64(st.Memory.TotalBytes))
	var wg sync.WaitGroup
	for _, m := range st.Models {
		for _, s := range states {
			v := 0.0
			if string(m.State) == s {
				v = 1
			}
			g.add(dState, v, m.Name, m.Engine, s)
		}
		g.add(dInflight, float64(m.Inflight), m.Name)
		g.add(dQueued, float64(m.Queued), m.Name)
		g.add(dReserved, float64(m.MemoryBytes), m.Name)
		g.add(dStarts, float64(m.Starts), m.Name)
		if m.State != "ready" {
			continue
		}
		p, err := c.s.Process(m.Name)
		if err != nil || p.Launch().MetricsURL == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.engine(g, m.Name, m.Engine, p.Launch().MetricsURL)
		}()
	}
	wg.Wait()
	if c.gpu != nil {
		for _, gp := range c.gpu().GPUs {
			lbl := []string{strconv.Itoa(gp.Index), gp.Name}
			if gp.MemoryUsed != nil {
				g.add(dGPUUsed, float64(*gp.MemoryUsed), lbl...)
			}
			if gp.MemoryTotal != nil {
				g.add(dGPUTotal, float64(*gp.MemoryTotal), lbl...)
			}
			if gp.Utilization != nil {
				g.add(dGPUUtil, *gp.Utilization/100, lbl...)
			}
			if gp.Temperature != nil {
				g.add(dGPUTemp, *gp.Temperature, lbl...)
			}
			if gp.Power != nil {
				g.add(dGPUPower, *gp.Power, lbl...)
			}
		}
	}
	for d, ss := range g.fam {
		w.family(*d, ss)
	}
}

// engine reads one engine's /metrics and reports its key gauges.
func (c *scrape) engine(g *gathered, model, eng, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	up := 0.0
	defer func() { g.add(dUp, up, model, eng) }()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.client.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	vals := ParseGauges(io.LimitReader(resp.Body, 8<<20), engineNames)
	up = 1
	for _, em := range Pick(vals) {
		g.add(em.desc, em.value, model, eng)
	}
}

type picked struct {
	desc  *desc
	value float64
}

// Pick chooses, for each of gantry's engine gauges, the value of the
// engine metric found first in engineMetrics' order.
func Pick(vals map[string]float64) []picked {
	var out []picked
	seen := map[*desc]bool{}
	for _, em := range engineMetrics {
		v, ok := vals[em.name]
		if !ok || seen[em.desc] {
			continue
		}
		seen[em.desc] = true
		out = append(out, picked{em.desc, v})
	}
	return out
}

// ParseGauges reads the Prometheus text format and sums the samples of the
// wanted metric names over their label sets.
func ParseGauges[V any](r io.Reader, want map[string]V) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			continue
		}
		name := line[:end]
		if _, ok := want[name]; !ok {
			continue
		}
		rest := line[end:]
		if rest[0] == '{' {
			close := strings.LastIndexByte(rest, '}')
			if close < 0 {
				continue
			}
			rest = rest[close+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out
}

// Package metrics is gantry's Prometheus endpoint: its own request,
// scheduler and memory metrics, and, collected when scraped, the engines'
// key gauges under one name each and the GPU telemetry.
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
)

// Metrics holds gantry's collectors on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttfb     *prometheus.HistogramVec
	starts   *prometheus.HistogramVec
	events   *prometheus.CounterVec
	keys     *keyMetrics
}

// latencyBuckets span a cached answer (ms) to a long generation (minutes).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// New registers gantry's metrics; s is scraped for the live gauges, gpuFn
// (may be nil) for GPU telemetry.
func New(version string, s *sched.Scheduler, gpuFn func() gpu.Facts) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gantry_requests_total",
			Help: "Gateway requests by model, route and HTTP status."}, []string{"model", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gantry_request_duration_seconds",
			Help: "Gateway request time from arrival to the last byte, loading included.", Buckets: latencyBuckets}, []string{"model", "route"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gantry_time_to_first_byte_seconds",
			Help: "Gateway time from arrival to the first response byte (the first token of a stream).", Buckets: latencyBuckets}, []string{"model", "route"}),
		starts: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gantry_model_start_duration_seconds",
			Help: "Time from launching an engine to its readiness.", Buckets: []float64{.1, .5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200}}, []string{"model"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gantry_scheduler_events_total",
			Help: "Scheduler actions: evictions, slot switches, idle stops, fallbacks, failures."}, []string{"kind", "model"}),
	}
	m.keys = newKeyMetrics(r)
	bi := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gantry_build_info", Help: "gantry's version; always 1."}, []string{"version", "goversion"})
	bi.WithLabelValues(version, runtime.Version()).Set(1)
	r.MustRegister(m.requests, m.duration, m.ttfb, m.starts, m.events, bi,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&scrape{s: s, gpu: gpuFn, client: &http.Client{Timeout: 2 * time.Second}})
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Request records one finished gateway request.
func (m *Metrics) Request(model, route string, code int, total, ttfb time.Duration, _ int) {
	m.requests.WithLabelValues(model, route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(model, route).Observe(total.Seconds())
	if ttfb > 0 {
		m.ttfb.WithLabelValues(model, route).Observe(ttfb.Seconds())
	}
}

// Event follows the scheduler's events.
func (m *Metrics) Event(ev status.Event) {
	switch ev.Kind {
	case "state":
		if ev.To == "failed" {
			m.events.WithLabelValues("failure", ev.Model).Inc()
		}
	case "eviction", "switch", "idle", "fallback":
		m.events.WithLabelValues(string(ev.Kind), ev.Model).Inc()
	}
}

// Started records an engine's load time.
func (m *Metrics) Started(model string, d time.Duration) {
	m.starts.WithLabelValues(model).Observe(d.Seconds())
}

// scrape collects the live gauges when Prometheus scrapes.
type scrape struct {
	s      *sched.Scheduler
	gpu    func() gpu.Facts
	client *http.Client
}

var (
	dState    = prometheus.NewDesc("gantry_model_state", "1 for the model's current state.", []string{"model", "engine", "state"}, nil)
	dInflight = prometheus.NewDesc("gantry_model_inflight_requests", "Requests the engine is serving through gantry.", []string{"model"}, nil)
	dQueued   = prometheus.NewDesc("gantry_model_queued_requests", "Requests waiting for the model to become ready.", []string{"model"}, nil)
	dReserved = prometheus.NewDesc("gantry_model_memory_reserved_bytes", "Memory the model reserves while it runs.", []string{"model"}, nil)
	dStarts   = prometheus.NewDesc("gantry_model_starts_total", "Engine starts since gantry started.", []string{"model"}, nil)
	dBudget   = prometheus.NewDesc("gantry_memory_budget_bytes", "Memory engines may reserve in all (total − reserve).", nil, nil)
	dResAll   = prometheus.NewDesc("gantry_memory_reserved_bytes", "Memory reserved by running models.", nil, nil)
	dTotal    = prometheus.NewDesc("gantry_memory_total_bytes", "Memory the budget is taken from.", nil, nil)
	dRunning  = prometheus.NewDesc("gantry_engine_requests_running", "Requests the engine reports running (vllm:num_requests_running, sglang:num_running_reqs, llamacpp:requests_processing).", []string{"model", "engine"}, nil)
	dWaiting  = prometheus.NewDesc("gantry_engine_requests_waiting", "Requests the engine reports queued (vllm:num_requests_waiting, sglang:num_queue_reqs, llamacpp:requests_deferred).", []string{"model", "engine"}, nil)
	dKV       = prometheus.NewDesc("gantry_engine_kv_cache_usage_ratio", "KV-cache use the engine reports, 0 to 1 (vllm:kv_cache_usage_perc, sglang:token_usage, llamacpp:kv_cache_usage_ratio).", []string{"model", "engine"}, nil)
	dUp       = prometheus.NewDesc("gantry_engine_metrics_up", "1 when the engine's own metrics could be read.", []string{"model", "engine"}, nil)
	dGPUUsed  = prometheus.NewDesc("gantry_gpu_memory_used_bytes", "GPU memory in use (absent when the GPU does not report it).", []string{"gpu", "name"}, nil)
	dGPUTotal = prometheus.NewDesc("gantry_gpu_memory_total_bytes", "GPU memory (absent on unified-memory GPUs).", []string{"gpu", "name"}, nil)
	dGPUUtil  = prometheus.NewDesc("gantry_gpu_utilization_ratio", "GPU utilization, 0 to 1.", []string{"gpu", "name"}, nil)
	dGPUTemp  = prometheus.NewDesc("gantry_gpu_temperature_celsius", "GPU temperature.", []string{"gpu", "name"}, nil)
	dGPUPower = prometheus.NewDesc("gantry_gpu_power_watts", "GPU power draw.", []string{"gpu", "name"}, nil)
)

// engineMetrics maps the engines' metric names (each engine's
// descriptor lists its own) to gantry's one name, in order of preference:
// where an engine exports two names for one gauge (vLLM renamed
// gpu_cache_usage_perc to kv_cache_usage_perc and exported both for a
// while), the first listed is reported, on every scrape.
var engineMetrics = func() []engineMetric {
	var out []engineMetric
	for _, g := range []struct {
		desc  *prometheus.Desc
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
	desc *prometheus.Desc
}

// engineNames is the set of names engineMetrics knows.
var engineNames = func() map[string]bool {
	m := map[string]bool{}
	for _, e := range engineMetrics {
		m[e.name] = true
	}
	return m
}()

func (c *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dState, dInflight, dQueued, dReserved, dStarts, dBudget, dResAll, dTotal,
		dRunning, dWaiting, dKV, dUp, dGPUUsed, dGPUTotal, dGPUUtil, dGPUTemp, dGPUPower} {
		ch <- d
	}
}

var states = []string{"stopped", "starting", "ready", "stopping", "failed"}

func (c *scrape) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	g := prometheus.GaugeValue
	ch <- prometheus.MustNewConstMetric(dBudget, g, float64(st.Memory.BudgetBytes))
	ch <- prometheus.MustNewConstMetric(dResAll, g, float64(st.Memory.ReservedBytes))
	ch <- prometheus.MustNewConstMetric(dTotal, g, float64(st.Memory.TotalBytes))
	var wg sync.WaitGroup
	for _, m := range st.Models {
		for _, s := range states {
			v := 0.0
			if string(m.State) == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(dState, g, v, m.Name, m.Engine, s)
		}
		ch <- prometheus.MustNewConstMetric(dInflight, g, float64(m.Inflight), m.Name)
		ch <- prometheus.MustNewConstMetric(dQueued, g, float64(m.Queued), m.Name)
		ch <- prometheus.MustNewConstMetric(dReserved, g, float64(m.MemoryBytes), m.Name)
		ch <- prometheus.MustNewConstMetric(dStarts, prometheus.CounterValue, float64(m.Starts), m.Name)
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
			c.engine(ch, m.Name, m.Engine, p.Launch().MetricsURL)
		}()
	}
	wg.Wait()
	if c.gpu == nil {
		return
	}
	for _, gp := range c.gpu().GPUs {
		lbl := []string{strconv.Itoa(gp.Index), gp.Name}
		if gp.MemoryUsed != nil {
			ch <- prometheus.MustNewConstMetric(dGPUUsed, g, float64(*gp.MemoryUsed), lbl...)
		}
		if gp.MemoryTotal != nil {
			ch <- prometheus.MustNewConstMetric(dGPUTotal, g, float64(*gp.MemoryTotal), lbl...)
		}
		if gp.Utilization != nil {
			ch <- prometheus.MustNewConstMetric(dGPUUtil, g, *gp.Utilization/100, lbl...)
		}
		if gp.Temperature != nil {
			ch <- prometheus.MustNewConstMetric(dGPUTemp, g, *gp.Temperature, lbl...)
		}
		if gp.Power != nil {
			ch <- prometheus.MustNewConstMetric(dGPUPower, g, *gp.Power, lbl...)
		}
	}
}

// engine reads one engine's /metrics and reports its key gauges.
func (c *scrape) engine(ch chan<- prometheus.Metric, model, eng, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	up := 0.0
	defer func() { ch <- prometheus.MustNewConstMetric(dUp, prometheus.GaugeValue, up, model, eng) }()
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
		ch <- prometheus.MustNewConstMetric(em.desc, prometheus.GaugeValue, em.value, model, eng)
	}
}

type picked struct {
	desc  *prometheus.Desc
	value float64
}

// Pick chooses, for each of gantry's engine gauges, the value of the
// engine metric found first in engineMetrics' order.
func Pick(vals map[string]float64) []picked {
	var out []picked
	seen := map[*prometheus.Desc]bool{}
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

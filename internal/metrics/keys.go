package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gantryhq/gantry/internal/activity"
)

// keyMetrics are the usage counters per key name. Their label values are
// the configured keys' names (and "-" for requests without a key): the
// number of series is bounded by the config, never by what clients send.
type keyMetrics struct {
	requests   *prometheus.CounterVec
	prompt     *prometheus.CounterVec
	completion *prometheus.CounterVec
	held       *prometheus.CounterVec

	mu    sync.Mutex
	known map[string]bool
}

func newKeyMetrics(r *prometheus.Registry) *keyMetrics {
	k := &keyMetrics{known: map[string]bool{"-": true},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gantry_key_requests_total",
			Help: "Gateway requests by key name and HTTP status (429: a limit of the key refused it)."}, []string{"key", "code"}),
		prompt: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gantry_key_prompt_tokens_total",
			Help: "Prompt tokens of the key's answers, as the engines counted them."}, []string{"key"}),
		completion: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gantry_key_completion_tokens_total",
			Help: "Completion tokens of the key's answers, as the engines counted them."}, []string{"key"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gantry_key_engine_seconds_total",
			Help: "Seconds the key's requests held an engine, from lease to end."}, []string{"key"}),
	}
	r.MustRegister(k.requests, k.prompt, k.completion, k.held)
	return k
}

// SetKeys names the configured keys (at start and on every reload); their
// counters show from then on, at 0 until used. A key a reload removes
// keeps the counts it had.
func (m *Metrics) SetKeys(names []string) {
	k := m.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range names {
		k.known[n] = true
		k.prompt.WithLabelValues(n)
		k.completion.WithLabelValues(n)
		k.held.WithLabelValues(n)
	}
}

// KeyUsage counts one finished request of the activity log by its key's
// name; a name that is not configured is counted as "-".
func (m *Metrics) KeyUsage(r activity.Record) {
	k := m.keys
	name := r.Key
	k.mu.Lock()
	if name == "" || !k.known[name] {
		name = "-"
	}
	k.mu.Unlock()
	k.requests.WithLabelValues(name, strconv.Itoa(r.Status)).Inc()
	if r.Tokens != nil {
		k.prompt.WithLabelValues(name).Add(float64(r.Tokens.Prompt))
		k.completion.WithLabelValues(name).Add(float64(r.Tokens.Completion))
	}
	if r.HeldMS > 0 {
		k.held.WithLabelValues(name).Add(r.HeldMS / 1000)
	}
}

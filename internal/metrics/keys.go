package metrics

import (
	"strconv"
	"sync"

	"github.com/gantryhq/gantry/internal/activity"
)

// keyMetrics are the usage counters per key name. Their label values are
// the configured keys' names (and "-" for requests without a key): the
// number of series is bounded by the config, never by what clients send.
type keyMetrics struct {
	requests   *counterVec
	prompt     *counterVec
	completion *counterVec
	held       *counterVec

	mu    sync.Mutex
	known map[string]bool
}

func newKeyMetrics() *keyMetrics {
	return &keyMetrics{known: map[string]bool{"-": true},
		requests:   newCounterVec("gantry_key_requests_total", "Gateway requests by key name and HTTP status (429: a limit of the key refused it).", "key", "code"),
		prompt:     newCounterVec("gantry_key_prompt_tokens_total", "Prompt tokens of the key's answers, as the engines counted them.", "key"),
		completion: newCounterVec("gantry_key_completion_tokens_total", "Completion tokens of the key's answers, as the engines counted them.", "key"),
		held:       newCounterVec("gantry_key_engine_seconds_total", "Seconds the key's requests held an engine, from lease to end.", "key"),
	}
}

func (k *keyMetrics) write(w *expo) {
	for _, c := range []*counterVec{k.requests, k.prompt, k.completion, k.held} {
		c.write(w)
	}
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
		k.prompt.add(0, n)
		k.completion.add(0, n)
		k.held.add(0, n)
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
	k.requests.add(1, name, strconv.Itoa(r.Status))
	if r.Tokens != nil {
		k.prompt.add(float64(r.Tokens.Prompt), name)
		k.completion.add(float64(r.Tokens.Completion), name)
	}
	if r.HeldMS > 0 {
		k.held.add(r.HeldMS/1000, name)
	}
}

package sim

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/gantryhq/gantry/internal/engine"
)

// metrics answers in the flavour's own metric names (its engine's
// descriptor's), the ones gantry's collector normalises.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	// The sim runs every request at once, as one unbounded batch: nothing
	// ever waits, so the queue gauges say 0.
	run, wait := s.running.Load(), int64(0)
	lbl := fmt.Sprintf(`{model_name=%q}`, s.o.Model)
	var b strings.Builder
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s%s %g\n", name, help, name, name, lbl, v)
	}
	counter := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s%s %g\n", name, help, name, name, lbl, v)
	}
	usage := math.Min(1, float64(run)*0.05)
	d, err := engine.Lookup(s.o.Flavor)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	first := func(names []string) string {
		if len(names) == 0 {
			return ""
		}
		return names[0]
	}
	for _, g := range []struct {
		name, help string
		v          float64
	}{
		{first(d.Metrics.Running), "Number of requests running.", float64(run)},
		{first(d.Metrics.Waiting), "Number of requests waiting to be processed.", float64(wait)},
		{first(d.Metrics.KVUsage), "KV-cache usage. 1 means 100 percent usage.", usage},
	} {
		if g.name != "" {
			gauge(g.name, g.help, g.v)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Sim.Gauges)) {
		gauge(name, d.Sim.Gauges[name], float64(run))
	}
	if d.Sim.Tokens != "" {
		counter(d.Sim.Tokens, "Number of generation tokens processed.", float64(s.tokens.Load()))
	}
	if b.Len() == 0 {
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, b.String()) //nolint:errcheck // the scraper went away
}

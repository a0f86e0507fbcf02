package sim

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// metrics answers in the flavour's own metric names, the ones gantry's
// collector normalises.
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
	switch s.o.Flavor {
	case "vllm":
		gauge("vllm:num_requests_running", "Number of requests in model execution batches.", float64(run))
		gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", float64(wait))
		gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage)
		counter("vllm:generation_tokens_total", "Number of generation tokens processed.", float64(s.tokens.Load()))
	case "sglang":
		gauge("sglang:num_running_reqs", "The number of running requests.", float64(run))
		gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", float64(wait))
		gauge("sglang:token_usage", "The token usage.", usage)
		counter("sglang:generation_tokens_total", "Number of generation tokens processed.", float64(s.tokens.Load()))
	case "llamacpp":
		gauge("llamacpp:requests_processing", "Number of requests processing.", float64(run))
		gauge("llamacpp:requests_deferred", "Number of requests deferred.", float64(wait))
		gauge("llamacpp:kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", usage)
		counter("llamacpp:tokens_predicted_total", "Number of generation tokens processed.", float64(s.tokens.Load()))
	case "trtllm":
		gauge("trtllm_num_requests_running", "Number of running requests.", float64(run))
	default:
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, b.String()) //nolint:errcheck
}

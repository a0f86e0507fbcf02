package engine

import (
	"fmt"
	"strings"
)

// Imitation is how `gantry sim --flavor <engine>` imitates the engine:
// its real behaviour while it loads and serves, which gantry's tests run
// against without the engine. The zero value: the simulator has no such
// flavor.
type Imitation struct {
	// Listen is when the engine opens its port during a load.
	Listen Listen
	// Loading is the message of its 503 while it loads ("": "model is
	// loading"); ReadyBody the JSON its /health answers once ready ("":
	// an empty 200).
	Loading, ReadyBody string
	// Version, when set, is what its GET /api/version reports (Ollama's).
	Version string
	// Tokenize: it answers POST /tokenize (vLLM's).
	Tokenize bool
	// Gauges are the metrics it exports, name → help, beyond Metrics'
	// (the first of each of Running, Waiting and KVUsage); Tokens is its
	// counter of generated tokens ("" none).
	Gauges map[string]string
	Tokens string
	// LoadLines are lines it prints while it loads, in order, from its
	// real output (sources cited): fmt verbs %[1]d for a pid, %.2[2]f for
	// seconds and %[3]s for a time; \r joins a tqdm bar's redraws.
	LoadLines []string
}

// Listen is when an engine opens its port during a load.
type Listen int

// When engines listen.
const (
	ListenAtOnce     Listen = iota + 1 // llama-server (503 "Loading model"), ollama serve
	ListenHalfway                      // SGLang: the server is up before its warm-up ends
	ListenWhenLoaded                   // vLLM, trtllm-serve: load first, listen after
)

// Flavors are the engines the simulator imitates, in display order.
func Flavors() []string {
	var out []string
	for _, d := range All() {
		if d.Sim.Listen != 0 {
			out = append(out, d.Name)
		}
	}
	return out
}

// bar is a tqdm bar's redraws from 0 to n of n, joined by \r.
func bar(desc string, n int, mid string) string {
	var b strings.Builder
	for i := 0; i <= n; i++ {
		if i > 0 {
			b.WriteByte('\r')
		}
		fmt.Fprintf(&b, "%s: %3d%%%s %d/%d [00:0%d<00:0%d, 1.00it/s]", desc, 100*i/n, mid, i, n, i, n-i)
	}
	return b.String()
}

package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

var (
	keysLine = regexp.MustCompile(`^BenchmarkKeysAndTraces\S*\s+\d+\s+.*?([-\d.]+) µs-keys-added.*?([\d.]+) µs-p50-plain.*?([-\d.]+) µs-traced-added`)
	offLine  = regexp.MustCompile(`^BenchmarkOff\S*\s+\d+\s+([\d.]+) ns/op\s+(\d+) B/op\s+(\d+) allocs/op`)
)

func init() {
	addSection(section{id: "keys", order: 45, title: "Named keys and traces on the request path",
		about: "The gateway's `BenchmarkKeysAndTraces` (three gateways in turn before one engine: no keys, 100 named keys " +
			"with limits, tracing at sample 1.0 over OTLP/HTTP) and telemetry's `BenchmarkOff` (every tracing hook on the nil " +
			"tracer that tracing off is): what each adds per request."})
	register(phase{name: "keys", section: "keys", order: 78, run: func(*env) error {
		return keysAndTraces(map[bool]int{true: 1000, false: 3000}[*quick])
	}})
}

// keysAndTraces runs the gateway's benchmark of named keys and traces
// (three gateways before one engine, in turn: no keys, 100 named keys with
// limits, tracing at sample 1.0 over OTLP/HTTP) and the one of every
// tracing hook on the nil tracer that tracing off is, and records what
// each adds per request against issue 27's bounds.
func keysAndTraces(rounds int) error {
	cmd := exec.Command("go", "test", "-run", "XXX", "-bench", "^BenchmarkKeysAndTraces$", "-benchtime", fmt.Sprintf("%dx", rounds), "-count", "3", "./internal/gateway")
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("keys benchmark: %v\n%s", err, outb)
	}
	var keys, traced, plain []float64
	for _, l := range strings.Split(string(outb), "\n") {
		if m := keysLine.FindStringSubmatch(l); m != nil {
			k, _ := strconv.ParseFloat(m[1], 64)
			p, _ := strconv.ParseFloat(m[2], 64)
			tr, _ := strconv.ParseFloat(m[3], 64)
			keys, plain, traced = append(keys, k), append(plain, p), append(traced, tr)
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("keys benchmark: no result in\n%s", outb)
	}
	k, tr := median(keys), median(traced)
	note := fmt.Sprintf("(p50 %.1f µs without; median of 3 runs of %d rounds)", median(plain), rounds)
	record("100 named keys with limits: added p50 per request", fmt.Sprintf("%.1f µs %s", k, note), "≤ 5 µs", yes(k <= 5))
	record("tracing at sample 1.0 (OTLP/HTTP): added p50 per request", fmt.Sprintf("%.1f µs %s", tr, note), "≤ 20 µs", yes(tr <= 20))
	cmd = exec.Command("go", "test", "-run", "XXX", "-bench", "^BenchmarkOff$", "-benchmem", "./internal/telemetry")
	outb, err = cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("tracing-off benchmark: %v\n%s", err, outb)
	}
	for _, l := range strings.Split(string(outb), "\n") {
		if m := offLine.FindStringSubmatch(l); m != nil {
			ns, _ := strconv.ParseFloat(m[1], 64)
			record("tracing off: every hook of a request (a nil tracer)", fmt.Sprintf("%.1f ns, %s allocations", ns, m[3]),
				"nothing measurable", yes(ns < 100 && m[3] == "0"))
			return nil
		}
	}
	return fmt.Errorf("tracing-off benchmark: no result in\n%s", outb)
}

package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func init() {
	addSection(section{id: "copypath", order: 50, title: "The request and copy paths: Go benchmarks",
		about: "`go test -run XXX -bench <name> -benchmem -count 5` of the hot paths, each figure the median of the five " +
			"(allocations are exact; times move with the machine's load). `BenchmarkProxyRequest` and `BenchmarkProxyStream` " +
			"run a request and a stream over loopback straight to an engine and through a gateway (`proxied+activity`: one that " +
			"records every request in an activity log, as `gantry serve` does by default), client and engine in the same process: " +
			"allocations count all three. A stream's op is one event's trip engine → client."})
	register(phase{name: "gobench", section: "copypath", order: 75, run: func(*env) error {
		if err := goBench("./internal/gateway", "^(BenchmarkProxyRequest|BenchmarkProxyStream|BenchmarkSSERelay|BenchmarkModelField.*)$"); err != nil {
			return err
		}
		return goBench("./internal/sched", "^BenchmarkAcquireReady$")
	}})
}

var goBenchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) MB/s)?\s+(\d+) B/op\s+(\d+) allocs/op`)

// goBench runs a package's benchmarks that match re and records each one's
// median time, bytes and allocations per op.
func goBench(pkg, re string) error {
	count := map[bool]string{true: "2", false: "5"}[*quick]
	outb, err := exec.Command("go", "test", "-run", "XXX", "-bench", re, "-benchmem", "-count", count, pkg).CombinedOutput()
	fmt.Print(string(outb))
	if err != nil {
		return fmt.Errorf("go test -bench %s %s: %v", re, pkg, err)
	}
	type figures struct{ ns, bytes, allocs []float64 }
	var names []string
	got := map[string]*figures{}
	for _, l := range strings.Split(string(outb), "\n") {
		m := goBenchLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		f := got[m[1]]
		if f == nil {
			f = &figures{}
			got[m[1]] = f
			names = append(names, m[1])
		}
		v := func(s string) float64 { x, _ := strconv.ParseFloat(s, 64); return x }
		f.ns, f.bytes, f.allocs = append(f.ns, v(m[2])), append(f.bytes, v(m[4])), append(f.allocs, v(m[5]))
	}
	if len(names) == 0 {
		return fmt.Errorf("go test -bench %s %s: no result in\n%s", re, pkg, outb)
	}
	for _, n := range names {
		f := got[n]
		value := fmt.Sprintf("%s/op, %.0f B/op, %.0f allocs/op", nsText(median(f.ns)), median(f.bytes), median(f.allocs))
		target, met := "", (*bool)(nil)
		if strings.HasPrefix(n, "BenchmarkProxyStream/proxied") {
			target, met = "0 allocations per relayed event", yes(slices.Max(f.allocs) == 0)
		}
		record("`"+n+"`", value, target, met)
	}
	return nil
}

func nsText(ns float64) string {
	if ns >= 10000 {
		return fmt.Sprintf("%.1f µs", ns/1000)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

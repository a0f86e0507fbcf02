package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func init() {
	addSection(section{id: "gateway", order: 40, title: "Gateway and scheduler: peers, cold starts, slot switches, body limits",
		about: `Cold start is measured on the sim's own clock (the instant it turned ready → the instant the held request ` +
			`arrived, from response headers); the slot switch subtracts the old engine's own shutdown and the new engine's ` +
			`own load (from their logs) from the whole switch. Through a peer: a second gantry whose only models are the ` +
			`first's, listed and relayed over its peer link, against the first gantry itself, interleaved.`})
	register(phase{name: "cold", section: "gateway", order: 60, run: func(e *env) error {
		coldStarts(e.gw, map[bool]int{true: 10, false: 50}[*quick])
		return nil
	}})
	register(phase{name: "switch", section: "gateway", order: 70, run: func(e *env) error {
		slotSwitch(e.gw, map[bool]int{true: 4, false: 10}[*quick])
		return nil
	}})
	addSection(section{id: "scan", order: 70, title: "Inventory scan",
		about: "`go test -run XXX -bench '^BenchmarkScan$' -benchmem -count 3 ./internal/inventory`: 50 model folders, " +
			"each a Llama-3.1-8B checkpoint (real tensor list, 4 shards with an index) plus a 24 GiB padding shard — " +
			"40 GiB per model, 2 TB of sparse safetensors in all. gantry reads the headers only; the page cache is warm."})
	register(phase{name: "scan", section: "scan", order: 80, run: func(*env) error { return inventoryScan() }})
}

func admin(method, url string, body string) error {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	r, err := client.Do(req)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, url, r.StatusCode, b)
	}
	return nil
}

// coldStarts: the time from the engine turning ready (the sim's own clock)
// to the held request reaching it.
func coldStarts(gw string, n int) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		if err := admin("POST", gw+"/api/models/cold/stop", ""); err != nil {
			fmt.Println(err)
			return
		}
		r, err := post(gw, "cold", false)
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		recv, _ := strconv.ParseInt(r.Header.Get("X-Sim-Received-Unix-Ns"), 10, 64)
		ready, _ := strconv.ParseInt(r.Header.Get("X-Sim-Ready-Unix-Ns"), 10, 64)
		if recv > 0 && ready > 0 {
			ds = append(ds, time.Duration(recv-ready))
		}
	}
	p99 := pct(ds, 99)
	record(fmt.Sprintf("cold start: engine ready → held request arrives (%d starts) p50 / p99", len(ds)),
		fmt.Sprintf("%.1f / %.1f ms", ms(pct(ds, 50)), ms(p99)), "p99 ≤ 50 ms", yes(p99 <= 50*time.Millisecond && len(ds) > 0))
}

var nsRE = regexp.MustCompile(`unix_ns=(\d+)`)

// simTimes reads the last start, ready, shutdown and stopped instants from
// a sim's log through gantry's API.
func simTimes(gw, model string) map[string]int64 {
	r, err := client.Get(gw + "/api/logs/" + model + "?tail=100")
	if err != nil {
		return nil
	}
	defer r.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		l := sc.Text()
		m := nsRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, _ := strconv.ParseInt(m[1], 10, 64)
		switch {
		case strings.Contains(l, "loading (load time"):
			out["start"] = v
		case strings.Contains(l, "sim: ready at"):
			out["ready"] = v
		case strings.Contains(l, "shutting down"):
			out["term"] = v
		case strings.Contains(l, "sim: stopped"):
			out["stopped"] = v
		}
	}
	return out
}

// slotSwitch: gantry's share of a switch — the whole switch minus the old
// engine's own shutdown and the new engine's own load (from their clocks).
func slotSwitch(gw string, n int) {
	if err := admin("POST", gw+"/api/slots/s/switch", `{"model":"a"}`); err != nil {
		fmt.Println(err)
		return
	}
	var ds []time.Duration
	from, to := "a", "b"
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := admin("POST", gw+"/api/slots/s/switch", fmt.Sprintf(`{"model":%q}`, to)); err != nil {
			fmt.Println(err)
			return
		}
		total := time.Since(t0)
		old, nu := simTimes(gw, from), simTimes(gw, to)
		own := time.Duration(old["stopped"]-old["term"]) + time.Duration(nu["ready"]-nu["start"])
		ds = append(ds, total-own)
		from, to = to, from
	}
	p50, mx := pct(ds, 50), pct(ds, 100)
	record(fmt.Sprintf("slot switch: gantry's time beyond the engines' own (%d switches) p50 / max", n),
		fmt.Sprintf("%.1f / %.1f ms", ms(p50), ms(mx)), "≤ 100 ms", yes(mx <= 100*time.Millisecond))
}

// inventoryScan runs the inventory's Go benchmark (50 models of 40 GiB of
// sparse safetensors: 2 TB) and records the median time per scan and the
// test process's peak RSS against the inventory issue's bounds.
var benchLine = regexp.MustCompile(`^BenchmarkScan\S*\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) peak-RSS-MB\s+(\d+) B/op\s+(\d+) allocs/op`)

func inventoryScan() error {
	cmd := exec.Command("go", "test", "-run", "XXX", "-bench", "^BenchmarkScan$", "-benchmem", "-count", "3", "./internal/inventory")
	outb, err := cmd.CombinedOutput()
	fmt.Print(string(outb))
	if err != nil {
		return fmt.Errorf("inventory benchmark: %v\n%s", err, outb)
	}
	var ns []float64
	var peak float64
	var bytesPer, allocs string
	for _, l := range strings.Split(string(outb), "\n") {
		m := benchLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		r, _ := strconv.ParseFloat(m[2], 64)
		ns, peak, bytesPer, allocs = append(ns, v), max(peak, r), m[3], m[4]
	}
	if len(ns) == 0 {
		return fmt.Errorf("inventory benchmark: no result in\n%s", outb)
	}
	t := time.Duration(median(ns))
	b, _ := strconv.ParseFloat(bytesPer, 64)
	record("time per scan (median of 3)", fmt.Sprintf("%.1f ms", ms(t)), "< 1 s", yes(t < time.Second))
	record("peak RSS of the test process", fmt.Sprintf("%.1f MB", peak), "< 50 MB", yes(peak < 50))
	record("allocated per scan", fmt.Sprintf("%.1f MB in %s allocations", b/1e6, allocs), "", nil)
	return nil
}

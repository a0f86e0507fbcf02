package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func init() {
	addSection(section{id: "relay", order: 10, title: "The relay against the floor: one client, 16 clients, 500 streams",
		about: `Every figure four ways to the same engine in the same run, interleaved (the order rotates each round): ` +
			`straight to its port; through a **raw TCP relay** (accept, dial, ` + "`io.Copy`" + ` both ways: no HTTP work at all, ` +
			`the floor of what relaying bytes costs here); through the standard library's ` + "`httputil.ReverseProxy`" + ` as it comes ` +
			`(default transport: it keeps two idle connections per engine, so it dials in every round, as in use); through gantry. ` +
			`Each relay runs in a process of its own; its CPU time is read from ` + "`/proc`" + ` while its own rounds ran. ` +
			`Added latency and ratios are against the direct way; "÷ raw" compares gantry's figure with the raw relay's. ` +
			`RSS is read at the end of the streams and again after 12 s without a request, the load generator's ` +
			`connections still open (idle keep-alive, as a client's pool keeps them).`})
	register(phase{name: "one", section: "relay", order: 10, run: func(e *env) error { oneClient(e.fast, map[bool]int{true: 500, false: 3000}[*quick]); return nil }})
	register(phase{name: "sixteen", section: "relay", order: 20, run: func(e *env) error {
		sixteen(e.fast, map[bool]time.Duration{true: time.Second, false: 3 * time.Second}[*quick])
		return nil
	}})
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, DisableCompression: true}}

const chatBody = `{"model":"%s","messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}],"max_tokens":16%s}`

func post(base, model string, stream bool) (*http.Response, error) {
	extra := ""
	if stream {
		extra = `,"stream":true`
	}
	return client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(chatBody, model, extra)))
}

func once(base, model string) (time.Duration, error) {
	t0 := time.Now()
	r, err := post(base, model, false)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", r.StatusCode)
	}
	return time.Since(t0), nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

// times is "a / b / c" of the relays' figures, each formatted by f.
func times(f func(k int) string) string {
	var parts []string
	for _, k := range relays {
		parts = append(parts, f(k))
	}
	return strings.Join(parts, " / ")
}

// versusRaw is gantry's figure over the raw relay's.
func versusRaw(g, r float64) string { return fmt.Sprintf("%.2f×", g/r) }

func oneClient(w ways, n int) {
	var lat [nWays][]time.Duration
	for i := 0; i < 200; i++ { // warm connections
		for _, base := range w.url {
			once(base, "fast")
		}
	}
	cost := startCosts(w)
	for i := 0; i < n; i++ {
		for _, k := range rotated(i) {
			if d, err := once(w.url[k], "fast"); err == nil {
				lat[k] = append(lat[k], d)
			}
		}
	}
	cost.record("1 client", func(k int) int { return len(lat[k]) })
	var added [nWays]time.Duration
	for k := range lat {
		added[k] = pct(lat[k], 50) - pct(lat[direct], 50)
		record(fmt.Sprintf("1 client: %s p50 / p90 / p99", wayNames[k]),
			fmt.Sprintf("%s / %s / %s", us(pct(lat[k], 50)), us(pct(lat[k], 90)), us(pct(lat[k], 99))), "", nil)
	}
	record("1 client: added p50, raw relay / stdlib proxy / gantry", times(func(k int) string { return us(added[k]) }), "", nil)
	ratio := float64(added[gantry]) / float64(added[raw])
	record("1 client: gantry's added p50 ÷ raw relay's", versusRaw(float64(added[gantry]), float64(added[raw])), "≤ 1.5×", yes(ratio <= 1.5))
	record("1 client: gantry's added p50 (p90, p99)", fmt.Sprintf("%s (%s, %s)", us(added[gantry]),
		us(pct(lat[gantry], 90)-pct(lat[direct], 90)), us(pct(lat[gantry], 99)-pct(lat[direct], 99))), "≤ 200 µs", yes(added[gantry] <= 200*time.Microsecond))
	record("1 client: stdlib proxy's added p50 above gantry's", fmt.Sprintf("%s vs %s", us(added[stdlib]), us(added[gantry])), "above gantry's", yes(added[stdlib] > added[gantry]))
}

// load runs c clients against base for d and returns requests/s and the
// latencies.
func load(base string, c int, d time.Duration) (float64, []time.Duration) {
	var mu sync.Mutex
	var lat []time.Duration
	var n atomic.Int64
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) {
				if l, err := once(base, "fast"); err == nil {
					mine = append(mine, l)
					n.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(t0).Seconds(), lat
}

// sixteen runs 16 clients each way, in rounds that rotate the order, and
// compares the ways' throughput with the direct way's, by the median of the
// rounds' ratios.
func sixteen(w ways, phase time.Duration) {
	for _, base := range w.url {
		load(base, 16, 300*time.Millisecond)
	}
	n := rounds(8)
	var rates [nWays][]float64
	var lat [nWays][]time.Duration
	cost := startCosts(w)
	defer cost.record("16 clients", func(k int) int { return len(lat[k]) })
	for i := 0; i < n; i++ {
		for _, k := range rotated(i) {
			r, l := load(w.url[k], 16, phase/2)
			rates[k] = append(rates[k], r)
			lat[k] = append(lat[k], l...)
		}
	}
	var ratio [nWays]float64
	var ratios [nWays][]float64
	for k := range rates {
		for i := range rates[k] {
			ratios[k] = append(ratios[k], rates[k][i]/rates[direct][i])
		}
		ratio[k] = median(ratios[k])
	}
	record("16 clients: requests/s direct / raw relay / stdlib proxy / gantry", fmt.Sprintf("%.0f / %s", median(rates[direct]),
		times(func(k int) string { return fmt.Sprintf("%.0f", median(rates[k])) })), "", nil)
	record("16 clients: throughput ÷ direct, raw relay / stdlib proxy / gantry", times(func(k int) string { return fmt.Sprintf("%.3f", ratio[k]) })+
		fmt.Sprintf(" (%d rounds; gantry %s)", n, spread("%.3f", ratios[gantry])), "", nil)
	record("16 clients: gantry's throughput ratio ÷ raw relay's", versusRaw(ratio[gantry], ratio[raw]), "≥ 0.9×", yes(ratio[gantry]/ratio[raw] >= 0.9))
	record("16 clients: gantry's throughput ÷ direct", fmt.Sprintf("%.2f", ratio[gantry]), "≥ 0.40", yes(ratio[gantry] >= 0.40))
	record("16 clients: stdlib proxy's throughput ÷ direct below gantry's", fmt.Sprintf("%.2f vs %.2f", ratio[stdlib], ratio[gantry]), "below gantry's", yes(ratio[stdlib] < ratio[gantry]))
	dl := lat[direct]
	record("16 clients: added p50 / p99, raw relay / stdlib proxy / gantry", times(func(k int) string {
		return fmt.Sprintf("%s / %s", us(pct(lat[k], 50)-pct(dl, 50)), us(pct(lat[k], 99)-pct(dl, 99)))
	}), "", nil)
}

// costs are what the relays spent during a phase: CPU time, and what perf
// counts (system calls, context switches).
type costs struct {
	w    ways
	cpu  [nWays]time.Duration
	perf [nWays]func() map[string]float64
}

func startCosts(w ways) *costs {
	c := &costs{w: w}
	for _, k := range relays {
		c.cpu[k] = cpuTime(w.pid[k])
		c.perf[k] = perfCounts(w.pid[k])
	}
	return c
}

// record writes the relays' costs per request (n: each way's requests).
func (c *costs) record(label string, n func(k int) int) {
	var cpu [nWays]float64
	var counts [nWays]map[string]float64
	for _, k := range relays {
		counts[k] = c.perf[k]()
		cpu[k] = float64((cpuTime(c.w.pid[k]) - c.cpu[k]).Microseconds()) / float64(max(n(k), 1))
	}
	record(label+": CPU per request, raw relay / stdlib proxy / gantry", times(func(k int) string { return fmt.Sprintf("%.0f", cpu[k]) })+" µs", "", nil)
	if counts[gantry] == nil {
		return
	}
	per := func(name string) string {
		return times(func(k int) string { return fmt.Sprintf("%.1f", counts[k][name]/float64(max(n(k), 1))) })
	}
	record(label+": system calls / context switches per request, raw relay / stdlib proxy / gantry",
		per("raw_syscalls:sys_enter")+" / "+per("context-switches"), "", nil)
	if label == "1 client" {
		each := func(k int, name string) float64 { return counts[k][name] / float64(max(n(k), 1)) }
		wake := func(k int) float64 {
			return each(k, "syscalls:sys_enter_futex") + each(k, "syscalls:sys_enter_epoll_pwait") + each(k, "syscalls:sys_enter_epoll_wait")
		}
		note(fmt.Sprintf("Per request, the raw relay made %.1f system calls (%.1f of them futex and epoll waits: a thread "+
			"put to sleep or woken) and %.1f context switches; the stdlib proxy %.1f (%.1f) and %.1f; gantry %.1f (%.1f) and %.1f. "+
			"gantry and the stdlib proxy both serve HTTP with net/http, whose server starts a goroutine to watch the client's "+
			"connection once a request is read and stops it when the answer is done, and waits for it: goroutine hand-offs the "+
			"raw relay, which parses nothing, does not make. That is the floor an HTTP relay on net/http stands on; "+
			"what is gantry's own is in the profile section.",
			each(raw, "raw_syscalls:sys_enter"), wake(raw), each(raw, "context-switches"),
			each(stdlib, "raw_syscalls:sys_enter"), wake(stdlib), each(stdlib, "context-switches"),
			each(gantry, "raw_syscalls:sys_enter"), wake(gantry), each(gantry, "context-switches")))
	}
	if *verbose {
		for _, k := range relays {
			fmt.Printf("  %s per request:", wayNames[k])
			for name, v := range counts[k] {
				fmt.Printf(" %s %.2f", strings.TrimPrefix(name, "syscalls:sys_enter_"), v/float64(max(n(k), 1)))
			}
			fmt.Println()
		}
	}
}

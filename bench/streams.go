package main

import (
	"bufio"
	"bytes"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var dataObj, usageKey = []byte("data: {"), []byte(`"usage"`)

// streamStats is what one burst of streams measured.
type streamStats struct {
	ttft, gaps []time.Duration
	// delivery is, for every event after the first, its arrival here less
	// the instant the sim stamped into it (same machine, same clock).
	delivery    []time.Duration
	frames, bad int64
	wall        time.Duration
}

var stampKey = []byte(`"sim_unix_ns":`)

// streamRun opens n streams at once and measures them.
func streamRun(base string, n int) streamStats {
	var mu sync.Mutex
	var st streamStats
	var fr, bad atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			r, err := client.Post(base+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"stream","stream":true,"messages":[{"role":"user","content":"x"}]}`))
			if err != nil {
				bad.Add(1)
				return
			}
			defer r.Body.Close()
			sc := bufio.NewScanner(r.Body)
			var myT time.Duration
			myG := make([]time.Duration, 0, 64)
			myD := make([]time.Duration, 0, 64)
			last := time.Time{}
			k := int64(0)
			for sc.Scan() {
				// Bytes, not Text: the load generator must not allocate per
				// line, or it takes the CPU the relay is measured with.
				l := sc.Bytes()
				if !bytes.HasPrefix(l, dataObj) || bytes.Contains(l, usageKey) {
					continue
				}
				now := time.Now()
				if last.IsZero() {
					myT = now.Sub(t0)
				} else {
					myG = append(myG, now.Sub(last))
					if sent, ok := stamp(l); ok {
						myD = append(myD, time.Duration(now.UnixNano()-sent))
					}
				}
				last = now
				k++
			}
			if k != 64 {
				bad.Add(1)
			}
			fr.Add(k)
			mu.Lock()
			st.ttft = append(st.ttft, myT)
			st.gaps = append(st.gaps, myG...)
			st.delivery = append(st.delivery, myD...)
			mu.Unlock()
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	st.frames, st.bad, st.wall = fr.Load(), bad.Load(), time.Since(t0)
	return st
}

// stamp reads the sim's send instant out of an event line.
func stamp(line []byte) (int64, bool) {
	i := bytes.Index(line, stampKey)
	if i < 0 {
		return 0, false
	}
	var ns int64
	for _, c := range line[i+len(stampKey):] {
		if c < '0' || c > '9' {
			break
		}
		ns = ns*10 + int64(c-'0')
	}
	return ns, ns > 0
}

// streams runs rounds of 500 streams, direct, through gantry and through
// the stdlib proxy, and reports the median of the rounds' figures with their
// range: one round's hiccup (another process taking a core for a few
// milliseconds) moves a p99 of 500 samples a lot, and the median says what a
// typical round costs.
func streams(w ways, rounds int) {
	// Warm the connection pools to 500, as a serving box's are: the figure
	// is the steady state, not 500 TCP handshakes. (The stdlib proxy keeps
	// two idle connections per engine, so it dials again every round, as it
	// does in use.)
	for _, base := range w.all() {
		streamRun(base, 500)
	}
	profile("streams")
	var rs [3][]round
	var cut, frames [3]int64
	var cpu [3]time.Duration // of the process in between, while its rounds ran
	for i := 0; i < rounds; i++ {
		for _, k := range rotated(i) {
			c0 := cpuTime(w.pids[k])
			r := streamRound(w.all()[k])
			cpu[k] += cpuTime(w.pids[k]) - c0
			rs[k] = append(rs[k], r)
			cut[k] += r.bad
			if *verbose {
				fmt.Printf("  round %2d %-7s frames/s %5.0f  TTFT p99 %5.1f ms  gap p99 %5.2f ms  delivery p50/p99 %.2f/%.2f ms\n",
					i, [3]string{"direct", "gantry", "stdlib"}[k], r.fps, r.ttft, r.gap, r.del50, r.del99)
			}
			frames[k] += r.frames
		}
	}
	perEvent := func(k int) float64 { return float64(cpu[k].Microseconds()) / float64(max(frames[k], 1)) }
	ds, ps, ss := rs[0], rs[1], rs[2]
	// med is the median over the rounds of f, of one side or of both.
	med := func(rs []round, f func(round) float64) float64 { return median(each(rs, f)) }
	ratio := func(d, p round) float64 { return p.fps / d.fps }
	addT := func(d, p round) float64 { return p.ttft - d.ttft }
	addG := func(d, p round) float64 { return p.gap - d.gap }
	fps := func(r round) float64 { return r.fps }
	ttft := func(r round) float64 { return r.ttft }
	gap := func(r round) float64 { return r.gap }
	del50 := func(r round) float64 { return r.del50 }
	del99 := func(r round) float64 { return r.del99 }
	r, t, g := median(pairs(ds, ps, ratio)), median(pairs(ds, ps, addT)), median(pairs(ds, ps, addG))
	sr, st, sg := median(pairs(ds, ss, ratio)), median(pairs(ds, ss, addT)), median(pairs(ds, ss, addG))
	record("500 streams: frames/s direct / proxied / stdlib proxy", fmt.Sprintf("%.0f / %.0f / %.0f (streams cut: %d / %d / %d)", med(ds, fps), med(ps, fps), med(ss, fps), cut[0], cut[1], cut[2]), "", nil)
	record("500 streams: proxied/direct frames ratio", fmt.Sprintf("%.4f (%s)", r, spread("%.4f", pairs(ds, ps, ratio))), "≥ 0.98", yes(r >= 0.98))
	record("500 streams: TTFT p99 direct / proxied", fmt.Sprintf("%.1f / %.1f ms", med(ds, ttft), med(ps, ttft)), "", nil)
	record("500 streams: added TTFT p99", fmt.Sprintf("%.1f ms (%s)", t, spread("%.1f", pairs(ds, ps, addT))), "≤ 30 ms", yes(t <= 30))
	record("500 streams: inter-chunk gap p99 direct / proxied", fmt.Sprintf("%.2f / %.2f ms", med(ds, gap), med(ps, gap)), "", nil)
	record("500 streams: added gap p99", fmt.Sprintf("%.2f ms (%s)", g, spread("%.2f", pairs(ds, ps, addG))), "≤ 2 ms", yes(g <= 2))
	record("500 streams: event delivery engine → client p50 / p99, direct", fmt.Sprintf("%.2f / %.2f ms", med(ds, del50), med(ds, del99)), "", nil)
	record("500 streams: event delivery engine → client p50 / p99, proxied", fmt.Sprintf("%.2f / %.2f ms", med(ps, del50), med(ps, del99)), "", nil)
	record("500 streams: stdlib proxy/direct frames ratio", fmt.Sprintf("%.4f (%s)", sr, spread("%.4f", pairs(ds, ss, ratio))), "below gantry's", yes(sr < r))
	record("500 streams: stdlib proxy added TTFT p99", fmt.Sprintf("%.1f ms (%s)", st, spread("%.1f", pairs(ds, ss, addT))), "above gantry's", yes(st > t))
	record("500 streams: stdlib proxy added gap p99", fmt.Sprintf("%.2f ms (%s)", sg, spread("%.2f", pairs(ds, ss, addG))), "above gantry's", yes(sg > g))
	record("500 streams: event delivery engine → client p50 / p99, stdlib proxy", fmt.Sprintf("%.2f / %.2f ms", med(ss, del50), med(ss, del99)), "", nil)
	record("500 streams: CPU per relayed event, gantry / stdlib proxy", fmt.Sprintf("%.1f / %.1f µs", perEvent(1), perEvent(2)), "gantry's below", yes(perEvent(1) < perEvent(2)))
}

type round struct {
	fps, ttft, gap float64 // frames/s; p99 of TTFT and of the gaps, in ms
	del50, del99   float64 // event delivery p50 and p99, in ms
	frames, bad    int64
}

// streamRound runs 500 streams against base after a collection in this
// process, so that the load generator's own GC does not land in a burst.
func streamRound(base string) round {
	runtime.GC()
	st := streamRun(base, 500)
	return round{float64(st.frames) / st.wall.Seconds(), ms(pct(st.ttft, 99)), ms(pct(st.gaps, 99)),
		ms(pct(st.delivery, 50)), ms(pct(st.delivery, 99)), st.frames, st.bad}
}

// each is f of every round.
func each(rs []round, f func(round) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// pairs is f of each round's direct figures and the same round's figures
// through a proxy.
func pairs(ds, ps []round, f func(d, p round) float64) []float64 {
	out := make([]float64, len(ds))
	for i := range ds {
		out[i] = f(ds[i], ps[i])
	}
	return out
}

// median of the rounds' figures.
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is the rounds' range, "rounds: lo … hi".
func spread(format string, xs []float64) string {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return fmt.Sprintf("%d rounds: "+format+" … "+format, len(s), s[0], s[len(s)-1])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

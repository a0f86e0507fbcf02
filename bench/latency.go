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

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0, DisableCompression: true}}

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

// roundsOr is the rounds -rounds asks for, or def.
func roundsOr(def int) int {
	if *nrounds > 0 {
		return *nrounds
	}
	return def
}

// ways are the three ways to one engine that the suite compares: straight
// to it, through gantry, and through the standard library's bare reverse
// proxy — the reference point, which gantry must beat.
type ways struct {
	direct, gantry, stdlib string
	pids                   [3]int // of the processes in between: none, gantry, the stdlib proxy
}

func (w ways) all() [3]string { return [3]string{w.direct, w.gantry, w.stdlib} }

// rotated is the order of the three in round i: each goes first, second
// and third in turn, so that what the order costs lands on all of them.
func rotated(i int) [3]int { return [3]int{i % 3, (i + 1) % 3, (i + 2) % 3} }

func oneClient(w ways, n int) {
	var lat [3][]time.Duration
	for i := 0; i < 200; i++ { // warm connections
		for _, base := range w.all() {
			once(base, "fast")
		}
	}
	for i := 0; i < n; i++ {
		for _, k := range rotated(i) {
			if d, err := once(w.all()[k], "fast"); err == nil {
				lat[k] = append(lat[k], d)
			}
		}
	}
	dd, pd, sd := lat[0], lat[1], lat[2]
	added, stdAdded := pct(pd, 50)-pct(dd, 50), pct(sd, 50)-pct(dd, 50)
	triple := func(ds []time.Duration) string {
		return fmt.Sprintf("%s / %s / %s", us(pct(ds, 50)), us(pct(ds, 90)), us(pct(ds, 99)))
	}
	record("1 client: direct p50 / p90 / p99", triple(dd), "", nil)
	record("1 client: proxied p50 / p90 / p99", triple(pd), "", nil)
	record("1 client: added p50 (p90, p99)", fmt.Sprintf("%s (%s, %s)", us(added), us(pct(pd, 90)-pct(dd, 90)), us(pct(pd, 99)-pct(dd, 99))), "≤ 200 µs", yes(added <= 200*time.Microsecond))
	record("1 client: stdlib proxy p50 / p90 / p99", triple(sd), "", nil)
	record("1 client: stdlib proxy added p50", us(stdAdded), "above gantry's", yes(stdAdded > added))
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

func sixteen(w ways, phase time.Duration) {
	profile("sixteen")
	var rate [3]float64
	var lat [3][]time.Duration
	for _, base := range w.all() {
		load(base, 16, 300*time.Millisecond)
	}
	for i := 0; i < 3; i++ { // interleaved phases
		for _, k := range rotated(i) {
			r, l := load(w.all()[k], 16, phase)
			rate[k] += r
			lat[k] = append(lat[k], l...)
		}
	}
	ratio, stdRatio := rate[1]/rate[0], rate[2]/rate[0]
	dl := lat[0]
	added := func(l []time.Duration) string {
		return fmt.Sprintf("%s / %s", us(pct(l, 50)-pct(dl, 50)), us(pct(l, 99)-pct(dl, 99)))
	}
	record("16 clients: requests/s direct / proxied / stdlib proxy", fmt.Sprintf("%.0f / %.0f / %.0f", rate[0]/3, rate[1]/3, rate[2]/3), "", nil)
	record("16 clients: proxied/direct throughput", fmt.Sprintf("%.2f", ratio), "≥ 0.40", yes(ratio >= 0.40))
	record("16 clients: added p50 / p99", added(lat[1]), "", nil)
	record("16 clients: stdlib proxy/direct throughput", fmt.Sprintf("%.2f", stdRatio), "below gantry's", yes(stdRatio < ratio))
	record("16 clients: stdlib proxy added p50 / p99", added(lat[2]), "", nil)
}

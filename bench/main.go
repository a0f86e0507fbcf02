// Command bench measures what gantry's gateway and scheduler cost, on this
// machine, against engines it starts itself (`gantry sim`), and writes the
// table to BENCHMARKS.md. Every measure is taken three ways, interleaved so
// that machine noise lands on all: straight to the engine, through gantry,
// and through the standard library's bare httputil.ReverseProxy (the
// reference gantry must beat).
//
//	go run ./bench            # the whole suite (about two minutes)
//	go run ./bench -quick     # fewer rounds, for a try
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	quick   = flag.Bool("quick", false, "fewer rounds")
	out     = flag.String("out", "BENCHMARKS.md", "file to write the table into (the part between the bench markers)")
	prof    = flag.String("cpuprofile", "", "write gantry's CPU profile during one phase here (a name ending .trace or .allocs: its execution trace or allocations instead)")
	phase   = flag.String("profile-phase", "streams", "the phase -cpuprofile covers: sixteen or streams")
	only    = flag.String("only", "", "run one phase (one, sixteen, streams, cold, switch, scan) and write nothing")
	genv    = flag.String("gantry-env", "", "extra environment for gantry, e.g. GOGC=200 (experiments; the sims gantry starts inherit it)")
	verbose = flag.Bool("v", false, "print every round of the 500-stream phase")
	nrounds = flag.Int("rounds", 0, "rounds of 500 streams each way (default 15; 5 with -only streams, 3 with -quick)")
	ref     = flag.String("serve-stdlib-proxy", "", "internal: serve the reference proxy, listen=upstream pairs separated by commas")
)

func main() {
	flag.Parse()
	if *ref != "" {
		serveStdlibProxy(*ref)
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	name, value, target string
	met                 *bool
}

var results []result

func record(name, value, target string, met *bool) {
	results = append(results, result{name, value, target, met})
	mark := ""
	if met != nil {
		mark = map[bool]string{true: "met", false: "NOT met"}[*met]
	}
	fmt.Printf("%-58s %-44s %s %s\n", name, value, target, mark)
}

func yes(b bool) *bool { return &b }

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func run() error {
	dir, err := os.MkdirTemp("", "gantry-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "gantry")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gantry")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort())
	fastPort, streamPort, slotPort := freePort(), freePort(), freePort()
	cfg := fmt.Sprintf(`listen: %s
root: %s
memory: {total: 64GiB, reserve: 0GiB}
defaults: {idle_timeout: 1h, stop_timeout: 10s}
slots:
  s: {port: %d, min_residency: 1ms}
models:
  fast: {engine: sim, memory: 1GiB, mode: always-on, port: %d, args: [--tokens, "16"]}
  stream: {engine: sim, memory: 1GiB, mode: always-on, port: %d, args: [--tokens, "64", --itl, 20ms, --stamp-events]}
  cold: {engine: sim, memory: 1GiB, args: [--load-time, 200ms, --flavor, vllm]}
  a: {engine: sim, memory: 1GiB, slot: s, args: [--load-time, 300ms]}
  b: {engine: sim, memory: 1GiB, slot: s, args: [--load-time, 300ms]}
`, listen, filepath.Join(dir, "ai"), slotPort, fastPort, streamPort)
	cfgPath := filepath.Join(dir, "gantry.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	pprofAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	g := exec.Command(bin, "serve", "--config", cfgPath, "--pprof", pprofAddr)
	if *genv != "" {
		g.Env = append(os.Environ(), strings.Fields(*genv)...)
	}
	var glog bytes.Buffer
	g.Stdout, g.Stderr = &glog, &glog
	if err := g.Start(); err != nil {
		return err
	}
	defer func() {
		g.Process.Signal(syscall.SIGTERM)
		g.Wait()
	}()
	gw := "http://" + listen
	if err := waitOK(gw+"/healthz", 20*time.Second); err != nil {
		return fmt.Errorf("%v\n%s", err, glog.String())
	}
	if err := waitReady(gw, 20*time.Second, "fast", "stream"); err != nil {
		return err
	}
	idleRSS := rss(g.Process.Pid)
	fmt.Printf("gantry pid %d, idle RSS %.1f MB\n\n", g.Process.Pid, idleRSS)

	fast := ways{direct: fmt.Sprintf("http://127.0.0.1:%d", fastPort), gantry: gw, pids: [3]int{0, g.Process.Pid, 0}}
	stream := fast
	stream.direct = fmt.Sprintf("http://127.0.0.1:%d", streamPort)
	stdlib, err := startStdlibProxy(&fast, &stream)
	if err != nil {
		return err
	}
	defer func() {
		stdlib.Process.Kill()
		stdlib.Wait()
	}()
	switch *only {
	case "one":
		oneClient(fast, 1000)
		return nil
	case "sixteen":
		sixteen(fast, 2*time.Second)
		return nil
	case "streams":
		streams(stream, roundsOr(5))
		return nil
	case "cold":
		coldStarts(gw, 20)
		return nil
	case "switch":
		slotSwitch(gw, 6)
		return nil
	case "scan":
		return inventoryScan()
	}
	rounds := 3000
	if *quick {
		rounds = 500
	}
	oneClient(fast, rounds)
	sixteen(fast, map[bool]time.Duration{true: time.Second, false: 3 * time.Second}[*quick])
	streams(stream, roundsOr(map[bool]int{true: 3, false: 15}[*quick]))
	runRSS := rss(g.Process.Pid)
	record("gantry RSS after the 500-stream run", fmt.Sprintf("%.1f MB", runRSS), "≤ 60 MB", yes(runRSS <= 60))
	record("stdlib proxy RSS after the 500-stream run", fmt.Sprintf("%.1f MB", rss(stdlib.Process.Pid)), "", nil)
	record("gantry RSS idle (after start)", fmt.Sprintf("%.1f MB", idleRSS), "≤ 25 MB", yes(idleRSS <= 25))
	coldStarts(gw, map[bool]int{true: 10, false: 50}[*quick])
	slotSwitch(gw, map[bool]int{true: 4, false: 10}[*quick])
	if err := inventoryScan(); err != nil {
		return err
	}
	return writeTable()
}

// startStdlibProxy runs the reference proxy in a process of its own, as
// gantry is, in front of both engines, and fills in the ways to it.
func startStdlibProxy(fast, stream *ways) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	fa, sa := fmt.Sprintf("127.0.0.1:%d", freePort()), fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd := exec.Command(exe, "-serve-stdlib-proxy", fa+"="+fast.direct+","+sa+"="+stream.direct)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	fast.stdlib, stream.stdlib = "http://"+fa, "http://"+sa
	fast.pids[2], stream.pids[2] = cmd.Process.Pid, cmd.Process.Pid
	for _, base := range []string{fast.stdlib, stream.stdlib} {
		if err := waitOK(base+"/health", 10*time.Second); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("stdlib proxy: %w", err)
		}
	}
	return cmd, nil
}

// serveStdlibProxy serves httputil.ReverseProxy as it comes — default
// transport, no tuning — on each listen=upstream pair, until killed. It
// flushes server-sent events as they arrive, as gantry does.
func serveStdlibProxy(spec string) {
	for _, pair := range strings.Split(spec, ",") {
		listen, upstream, _ := strings.Cut(pair, "=")
		u, err := url.Parse(upstream)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: stdlib proxy:", err)
			os.Exit(2)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: stdlib proxy:", err)
			os.Exit(2)
		}
		go http.Serve(ln, httputil.NewSingleHostReverseProxy(u))
	}
	select {}
}

func waitOK(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r, err := http.Get(url); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", url)
}

// waitReady waits until gantry's status shows every one of models ready.
func waitReady(gw string, d time.Duration, models ...string) error {
	deadline := time.Now().Add(d)
	for {
		var st struct {
			Models []struct{ Name, State string }
		}
		if r, err := http.Get(gw + "/api/status"); err == nil {
			json.NewDecoder(r.Body).Decode(&st) //nolint:errcheck // an odd answer counts as not ready
			r.Body.Close()
		}
		ready := 0
		for _, m := range st.Models {
			if slices.Contains(models, m.Name) && m.State == "ready" {
				ready++
			}
		}
		if ready == len(models) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gantry does not show %v ready after %s", models, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rss is the process's resident set in MB (VmRSS).
func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuTime is the CPU time, user and system, that process pid has used
// (0 for pid 0 or a process that is gone).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid == 0 || err != nil {
		return 0
	}
	// The command's name, in parentheses, may hold spaces: count the
	// fields after it. utime and stime are the line's 14th and 15th, in
	// ticks of 10 ms (USER_HZ is 100 on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

var pprofAddr string

// profile captures gantry's CPU profile for 4 s when this is the phase
// -profile-phase names.
func profile(name string) {
	if *prof == "" || *phase != name {
		return
	}
	go func() {
		kind := "profile"
		for _, k := range []string{"trace", "allocs"} {
			if strings.HasSuffix(*prof, "."+k) {
				kind = k
			}
		}
		r, err := http.Get("http://" + pprofAddr + "/debug/pprof/" + kind + "?seconds=4")
		if err != nil {
			return
		}
		defer r.Body.Close()
		f, _ := os.Create(*prof)
		io.Copy(f, r.Body)
		f.Close()
	}()
}

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

var benchLine = regexp.MustCompile(`^BenchmarkScan\S*\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) peak-RSS-MB\s+(\d+) B/op\s+(\d+) allocs/op`)

// inventoryScan runs the inventory's Go benchmark (50 models of 40 GiB of
// sparse safetensors: 2 TB) and records the median time per scan and the
// test process's peak RSS against the inventory issue's bounds.
func inventoryScan() error {
	cmd := exec.Command("go", "test", "-run", "XXX", "-bench", "^BenchmarkScan$", "-benchmem", "-count", "3", "./internal/inventory")
	outb, err := cmd.CombinedOutput()
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
	record("inventory scan: 50 models, 2 TB of safetensors (median of 3) / peak RSS",
		fmt.Sprintf("%.1f ms / %.1f MB (%.1f MB in %s allocations per scan)", ms(t), peak, b/1e6, allocs),
		"< 1 s, < 50 MB", yes(t < time.Second && peak < 50))
	return nil
}

// writeTable puts the results between the markers in BENCHMARKS.md.
func writeTable() error {
	host, _ := os.Hostname()
	cpu := "unknown cpu"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	var b strings.Builder
	command := "go run ./bench"
	if *quick {
		command += " -quick"
	}
	if *nrounds > 0 {
		command += fmt.Sprintf(" -rounds %d", *nrounds)
	}
	if *genv != "" {
		command += fmt.Sprintf(" -gantry-env %q", *genv)
	}
	fmt.Fprintf(&b, "<!-- bench:start -->\nMeasured %s on %s (%s, %d cores, %s) with `%s`.\n\n",
		time.Now().Format("2006-01-02 15:04 MST"), host, cpu, runtime.NumCPU(), runtime.Version(), command)
	b.WriteString("| measure | result | target | |\n|---|---|---|---|\n")
	for _, r := range results {
		mark := ""
		if r.met != nil {
			mark = map[bool]string{true: "met", false: "**not met**"}[*r.met]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.name, r.value, r.target, mark)
	}
	b.WriteString("<!-- bench:end -->")
	old, _ := os.ReadFile(*out)
	text := string(old)
	i, j := strings.Index(text, "<!-- bench:start -->"), strings.Index(text, "<!-- bench:end -->")
	if i >= 0 && j > i {
		text = text[:i] + b.String() + text[j+len("<!-- bench:end -->"):]
	} else {
		text += "\n## Gateway and scheduler\n\n" + b.String() + "\n"
	}
	if err := os.WriteFile(*out, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", *out)
	return nil
}

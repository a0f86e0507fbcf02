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
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

var (
	quick   = flag.Bool("quick", false, "fewer rounds")
	out     = flag.String("out", "BENCHMARKS.md", "file to write the table into (the part between the bench markers)")
	prof    = flag.String("cpuprofile", "", "write gantry's CPU profile during one phase here (a name ending .trace or .allocs: its execution trace or allocations instead)")
	phase   = flag.String("profile-phase", "streams", "the phase -cpuprofile covers: sixteen or streams")
	only    = flag.String("only", "", "run one phase (one, routes, sixteen, streams, peer, cold, switch, scan, trickle, keys, container: needs DOCKER_HOST with the e2e test image) and write nothing")
	noAct   = flag.Bool("no-activity", false, "run gantry with its activity log off (activity: {keep_days: 0}), to compare")
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
	ollamaListen := fmt.Sprintf("127.0.0.1:%d", freePort())
	fastPort, streamPort, slotPort := freePort(), freePort(), freePort()
	cfg := fmt.Sprintf(`listen: %s
root: %s
memory: {total: 64GiB, reserve: 0GiB}
activity: {keep_days: %d}
ollama_api: {listen: %s}
defaults: {idle_timeout: 1h, stop_timeout: 10s}
slots:
  s: {port: %d, min_residency: 1ms}
models:
  fast: {engine: sim, memory: 1GiB, mode: always-on, port: %d, args: [--tokens, "16"]}
  stream: {engine: sim, memory: 1GiB, mode: always-on, port: %d, args: [--tokens, "64", --itl, 20ms, --stamp-events]}
  cold: {engine: sim, memory: 1GiB, args: [--load-time, 200ms, --flavor, vllm]}
  a: {engine: sim, memory: 1GiB, slot: s, args: [--load-time, 300ms]}
  b: {engine: sim, memory: 1GiB, slot: s, args: [--load-time, 300ms]}
`, listen, filepath.Join(dir, "ai"), map[bool]int{true: 0, false: 30}[*noAct], ollamaListen, slotPort, fastPort, streamPort)
	cfgPath := filepath.Join(dir, "gantry.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	pprofAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	g, stop, err := serve(bin, cfgPath, listen, strings.Fields(*genv), "--pprof", pprofAddr)
	if err != nil {
		return err
	}
	defer stop()
	gw := "http://" + listen
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
	case "routes":
		translatedRoutes(gw, "http://"+ollamaListen, 1000)
		return nil
	case "trickle":
		trickle(gw, g.Process.Pid, 200, 256*1.048576)
		return nil
	case "peer":
		return peerRelay(bin, dir, gw, 1000, roundsOr(5))
	case "container":
		return containerStarts(bin, dir, os.Getenv("DOCKER_HOST"), 10)
	case "keys":
		return keysAndTraces(3000)
	}
	rounds := 3000
	if *quick {
		rounds = 500
	}
	oneClient(fast, rounds)
	translatedRoutes(gw, "http://"+ollamaListen, rounds/2)
	sixteen(fast, map[bool]time.Duration{true: time.Second, false: 3 * time.Second}[*quick])
	streams(stream, roundsOr(map[bool]int{true: 3, false: 15}[*quick]))
	runRSS := rss(g.Process.Pid)
	record("gantry RSS after the 500-stream run", fmt.Sprintf("%.1f MB", runRSS), "≤ 60 MB", yes(runRSS <= 60))
	record("stdlib proxy RSS after the 500-stream run", fmt.Sprintf("%.1f MB", rss(stdlib.Process.Pid)), "", nil)
	record("gantry RSS idle (after start)", fmt.Sprintf("%.1f MB", idleRSS), "≤ 25 MB", yes(idleRSS <= 25))
	if err := peerRelay(bin, dir, gw, rounds/2, map[bool]int{true: 3, false: 7}[*quick]); err != nil {
		return err
	}
	coldStarts(gw, map[bool]int{true: 10, false: 50}[*quick])
	slotSwitch(gw, map[bool]int{true: 4, false: 10}[*quick])
	if err := inventoryScan(); err != nil {
		return err
	}
	trickle(gw, g.Process.Pid, 200, 256*1.048576)
	if err := keysAndTraces(map[bool]int{true: 1000, false: 3000}[*quick]); err != nil {
		return err
	}
	return writeTable()
}

// serve runs `gantry serve` on the config at cfgPath (env added to this
// process's, extra flags after) and waits until it answers on listen; stop
// ends it. Its output is kept for the error when it does not answer.
func serve(bin, cfgPath, listen string, env []string, extra ...string) (g *exec.Cmd, stop func(), err error) {
	g = exec.Command(bin, append([]string{"serve", "--config", cfgPath}, extra...)...)
	g.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	g.Stdout, g.Stderr = &out, &out
	if err := g.Start(); err != nil {
		return nil, nil, err
	}
	stop = func() {
		g.Process.Signal(syscall.SIGTERM)
		g.Wait()
	}
	if err := waitOK("http://"+listen+"/healthz", 20*time.Second); err != nil {
		stop()
		return nil, nil, fmt.Errorf("%v\n%s", err, out.String())
	}
	return g, stop, nil
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

var benchLine = regexp.MustCompile(`^BenchmarkScan\S*\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) peak-RSS-MB\s+(\d+) B/op\s+(\d+) allocs/op`)

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

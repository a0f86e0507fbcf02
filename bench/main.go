// Command bench measures what gantry's gateway and scheduler cost on this
// machine, against engines it starts itself (`gantry sim`), and writes
// every figure it reports into BENCHMARKS.md: each section between its
// markers, stamped with the commit and the machine of the run. Relay
// figures are taken four ways in the same run, interleaved so that machine
// noise lands on all: straight to the engine, through a raw TCP relay (the
// floor), through the standard library's httputil.ReverseProxy, and
// through gantry.
//
//	go run ./bench                # every phase this machine can run (about 10 minutes)
//	go run ./bench -quick         # fewer rounds, for a try
//	go run ./bench -only streams  # named phases only (comma-separated); rewrites their sections
//	go run ./bench -pprof DIR     # also gantry's CPU profile of each phase, DIR/<phase>.pprof
//
// Each phase is a file that registers itself (phase.go says how).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

var (
	quick   = flag.Bool("quick", false, "fewer rounds, for a try")
	outPath = flag.String("out", "BENCHMARKS.md", "the file whose sections the run rewrites")
	only    = flag.String("only", "", "run only these phases (comma-separated) and rewrite their sections")
	pprofTo = flag.String("pprof", "", "write gantry's CPU profile of each phase into this directory (<phase>.pprof)")
	noAct   = flag.Bool("no-activity", false, "run gantry with its activity log off (activity: {keep_days: 0}), to compare; writes nothing")
	genv    = flag.String("gantry-env", "", "extra environment for gantry, e.g. GOGC=200 (experiments; the sims gantry starts inherit it); writes nothing")
	dryRun  = flag.Bool("n", false, "write nothing, print only")
	verbose = flag.Bool("v", false, "print every round of the stream phases")
	nrounds = flag.Int("rounds", 0, "rounds of the stream phases (default: each phase's own; 3 with -quick)")
	stdSrv  = flag.String("serve-stdlib-proxy", "", "internal: serve the stdlib proxy, listen=upstream pairs separated by commas")
	rawSrv  = flag.String("serve-raw-relay", "", "internal: serve the raw TCP relay, listen=upstream pairs separated by commas")
)

func main() {
	flag.Parse()
	switch {
	case *stdSrv != "":
		serveStdlibProxy(*stdSrv)
	case *rawSrv != "":
		serveRawRelay(*rawSrv)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// env is what every phase gets: the gantry this run started, its engines
// and the ways to them.
type env struct {
	bin, dir   string // the gantry binary built for this run; a scratch directory
	gw, ollama string // gantry's main and Ollama listeners, as base URLs
	pid        int    // gantry's
	// fast answers 16 tokens at once; stream streams 64 tokens 20 ms apart.
	fast, stream ways
	idleRSS      float64 // gantry's RSS a second after its engines were ready, MB
	idleFile     float64 // of which file-backed (the binary's pages), MB
	idleAnon     float64 // of which anonymous (heap, stacks, the runtime's), MB
}

// rounds is what -rounds asks for, or 3 with -quick, or def.
func rounds(def int) int {
	switch {
	case *nrounds > 0:
		return *nrounds
	case *quick:
		return min(3, def)
	}
	return def
}

func run() error {
	ps, err := chosen(*only)
	if err != nil {
		return err
	}
	load := loadAverage()
	peak := load
	e, stop, err := setup()
	if err != nil {
		return err
	}
	defer stop()
	var failed []string
	broken := map[string]bool{} // sections a failed phase writes into
	for _, p := range ps {
		if p.needs != nil {
			if err := p.needs(e); err != nil {
				if *only != "" {
					return fmt.Errorf("phase %s: %w", p.name, err)
				}
				fmt.Printf("\n[%s] left out: %v\n", p.name, err)
				continue
			}
		}
		fmt.Printf("\n[%s]\n", p.name)
		peak = maxLoad(peak, loadAverage())
		current = p.section
		done := func() {}
		if p.name != "profile" { // it takes its own profiles
			done = profilePhase(p.name)
		}
		err := p.run(e)
		done()
		if err != nil {
			// The other phases still run and write; this one's section
			// keeps its last run.
			fmt.Printf("phase %s failed: %v\n", p.name, err)
			failed = append(failed, fmt.Sprintf("%s (%v)", p.name, err))
			broken[p.section] = true
		}
	}
	for id := range broken {
		delete(out, id)
	}
	err = nil
	if len(failed) > 0 {
		err = fmt.Errorf("phases failed, their sections keep their last run: %s", strings.Join(failed, "; "))
	}
	if *dryRun || *noAct || *genv != "" {
		return err
	}
	peak = maxLoad(peak, loadAverage())
	if werr := writeReport(*outPath, command(), load+" when it began, at most "+peak+" when a phase began"); werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Printf("\nwrote %s\n", *outPath)
	return err
}

// command is how this run was started, for the stamp.
func command() string {
	c := "go run ./bench"
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "out" {
			c += fmt.Sprintf(" -%s=%s", f.Name, f.Value)
		}
	})
	return c
}

// setup builds gantry, starts it with its sim engines, and the raw relay
// and the stdlib proxy in front of the same engines.
func setup() (*env, func(), error) {
	dir, err := os.MkdirTemp("", "gantry-bench-")
	if err != nil {
		return nil, nil, err
	}
	var stops []func()
	stop := func() {
		for _, f := range slices.Backward(stops) {
			f()
		}
		os.RemoveAll(dir)
	}
	fail := func(err error) (*env, func(), error) { stop(); return nil, nil, err }
	e := &env{dir: dir, bin: filepath.Join(dir, "gantry")}
	build := exec.Command("go", "build", "-o", e.bin, "./cmd/gantry")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fail(fmt.Errorf("build: %w", err))
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
		return fail(err)
	}
	pprofAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	g, stopG, err := serve(e.bin, cfgPath, listen, strings.Fields(*genv), "--pprof", pprofAddr)
	if err != nil {
		return fail(err)
	}
	stops = append(stops, stopG)
	e.gw, e.ollama, e.pid = "http://"+listen, "http://"+ollamaListen, g.Process.Pid
	if err := waitReady(e.gw, 20*time.Second, "fast", "stream"); err != nil {
		return fail(err)
	}
	// Idle is once the start's work is done: a model that turns ready has
	// its log scanned for warnings just after.
	time.Sleep(time.Second)
	e.idleRSS = rss(e.pid)
	e.idleFile, e.idleAnon = procStatusMB(e.pid, "RssFile"), procStatusMB(e.pid, "RssAnon")
	fmt.Printf("gantry pid %d, idle RSS %.1f MB\n", e.pid, e.idleRSS)
	e.fast.url[direct], e.stream.url[direct] = fmt.Sprintf("http://127.0.0.1:%d", fastPort), fmt.Sprintf("http://127.0.0.1:%d", streamPort)
	e.fast.url[gantry], e.stream.url[gantry] = e.gw, e.gw
	e.fast.pid[gantry], e.stream.pid[gantry] = e.pid, e.pid
	stopR, err := startRelays(&e.fast, &e.stream)
	if err != nil {
		return fail(err)
	}
	stops = append(stops, stopR)
	return e, stop, nil
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

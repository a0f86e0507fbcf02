// Package sim is gantry's simulated inference engine: an OpenAI-compatible
// server with an engine's health semantics, paced token streams and faults
// on demand. Tests, the demo and the benchmarks run it as a real process
// (`gantry sim`) so that everything around it is exercised for real.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
)

// Flavors are the engines the sim can imitate (their descriptors' Sim).
var Flavors = engine.Flavors()

// Options configure one simulated engine.
type Options struct {
	Port     int
	Host     string
	Model    string
	Flavor   string        // health semantics: vllm, sglang, ollama, llamacpp, trtllm
	LoadTime time.Duration // how long "loading the model" takes
	TTFT     time.Duration // time to first token
	ITL      time.Duration // inter-token latency
	Tokens   int           // tokens per completion (max_tokens may lower it)
	Embed    bool          // serve /v1/embeddings
	Dims     int           // embedding dimensions

	StampEvents     bool // each streamed event carries "sim_unix_ns", the instant it was sent
	CrashAfter      int  // exit(3) after this many completed requests (0 = never)
	HangLoad        bool // never become ready
	LoadUntilSignal bool // the load ends when SIGUSR1 arrives, not after LoadTime
	FailHealthAfter int  // /health answers 500 after this many ready answers (0 = never)
	IgnoreSIGTERM   bool // keep running on SIGTERM (only SIGKILL stops it)
	SpawnChild      bool // start a grandchild in the same process group
	IdleChild       bool // internal: be the grandchild (block until killed)
	Progress        bool // print the flavor's real load lines while loading

	// NNodes, NodeRank and DistInitAddr make the sim one rank of a model
	// across nodes, as SGLang's flags of the same names do: rank 0 waits
	// for every rank before it loads and serves; ranks ≥ 1 answer health
	// only; when any rank dies the others exit.
	NNodes       int
	NodeRank     int
	DistInitAddr string
}

// imitation is how the flavor's engine behaves (the zero Imitation for
// an unknown flavor, which Validate refuses).
func imitation(flavor string) engine.Imitation {
	if d, err := engine.Lookup(flavor); err == nil {
		return d.Sim
	}
	return engine.Imitation{}
}

// Validate checks the options; it is what `gantry sim` reports on bad flags.
func (o *Options) Validate() error {
	ok := false
	for _, f := range Flavors {
		if o.Flavor == f {
			ok = true
		}
	}
	switch {
	case !ok:
		return fmt.Errorf("--flavor %q: want one of %s", o.Flavor, strings.Join(Flavors, ", "))
	case o.Port < 0 || o.Port > 65535:
		return fmt.Errorf("--port %d is not a port", o.Port)
	case o.Tokens < 1:
		return fmt.Errorf("--tokens must be at least 1")
	case o.LoadTime < 0 || o.TTFT < 0 || o.ITL < 0:
		return fmt.Errorf("times must not be negative")
	case o.HangLoad && o.LoadUntilSignal:
		return fmt.Errorf("--hang-load and --load-until-signal contradict each other: pick one")
	case o.Dims < 1 || o.Dims > 65536:
		return fmt.Errorf("--dims must be from 1 to 65536")
	}
	return o.validateNodes()
}

// server is the running engine's state.
type server struct {
	o        Options
	log      *log.Logger
	ready    atomic.Bool
	healthOK atomic.Int64 // ready health answers given
	served   atomic.Int64 // completed requests
	running  atomic.Int64 // in-flight requests
	total    atomic.Int64
	tokens   atomic.Int64
	crashMu  sync.Mutex
	readyNS  atomic.Int64 // when the sim turned ready, for benchmarks
	group    []net.Conn   // to the other ranks of a model across nodes
}

// Run serves until ctx is done or SIGTERM arrives (then it drains in-flight
// requests for up to 10 s). It writes its log to out.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	out = &lockedWriter{w: out}
	lg := log.New(out, "", log.LstdFlags|log.Lmicroseconds)
	if o.IdleChild {
		if o.IgnoreSIGTERM {
			signal.Ignore(syscall.SIGTERM)
		}
		lg.Printf("sim child: pid %d waiting", os.Getpid())
		select {} // until killed
	}
	if o.IgnoreSIGTERM {
		signal.Ignore(syscall.SIGTERM)
	}
	s := &server{o: o, log: lg}
	if o.SpawnChild {
		if err := s.spawnChild(); err != nil {
			return err
		}
	}
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if o.IgnoreSIGTERM {
		sigCtx = ctx
	}
	lg.Printf("sim: model %s, flavor %s, loading (load time %s) (unix_ns=%d)", o.Model, o.Flavor, o.LoadTime, time.Now().UnixNano())

	lost, err := s.joinGroup(sigCtx)
	defer s.leaveGroup()
	if err != nil {
		if sigCtx.Err() != nil {
			lg.Printf("sim: stopped while waiting for the other ranks")
			return nil
		}
		return err
	}
	addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	handler := s.routes()
	if o.NodeRank > 0 {
		handler = s.rankRoutes()
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	// Engines differ in what a client sees while they load: vLLM and
	// trtllm-serve open their port only when ready; SGLang opens it midway
	// and answers 503 until warm-up ends; llama-server and Ollama listen at
	// once (llama-server answers 503 "Loading model").
	loaded := s.load(sigCtx, out)
	select {
	case <-loaded:
	case <-listenDue(o):
	case <-sigCtx.Done():
		lg.Printf("sim: stopped while loading")
		return nil
	}
	loadedNow := false
	select {
	case <-loaded:
		loadedNow = true
	default:
	}
	if loadedNow && !o.HangLoad {
		s.markReady() // before the port opens: no probe sees it open and not ready
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	lg.Printf("sim: listening on %s", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	if !loadedNow && !o.HangLoad {
		go func() {
			select {
			case <-loaded:
				s.markReady()
			case <-sigCtx.Done(): // stopped while loading
			}
		}()
	}
	return s.serveUntil(sigCtx, srv, errc, lost)
}

// load begins the load and returns the channel its end closes: after
// LoadTime (printing the flavor's real load lines with Progress), or at
// SIGUSR1 with LoadUntilSignal (a test ends the load when it is ready to).
func (s *server) load(ctx context.Context, out io.Writer) <-chan struct{} {
	o := s.o
	loaded := make(chan struct{})
	if o.LoadUntilSignal {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			defer signal.Stop(usr1)
			select {
			case <-usr1:
				close(loaded)
			case <-ctx.Done():
			}
		}()
		return loaded
	}
	if o.Progress {
		go printLoad(ctx, o.Flavor, o.LoadTime, out)
	}
	go func() {
		if sleepCtx(ctx, o.LoadTime) {
			close(loaded)
		}
	}()
	return loaded
}

// listenDue fires when the port opens before the load is over, by the
// flavor's engine (its descriptor's Sim.Listen); nil means at its end (the
// same moment as readiness, so a probe never finds the port open and the
// engine not ready).
func listenDue(o Options) <-chan time.Time {
	switch imitation(o.Flavor).Listen {
	case engine.ListenWhenLoaded:
		if o.HangLoad {
			return time.After(0) // listen, but never turn ready, so probes see why
		}
		return nil
	case engine.ListenHalfway:
		if !o.LoadUntilSignal {
			return time.After(o.LoadTime / 2)
		}
	}
	return time.After(0)
}

// markReady turns the engine ready and says so in its log.
func (s *server) markReady() {
	now := time.Now()
	s.readyNS.Store(now.UnixNano())
	s.ready.Store(true)
	s.log.Printf("sim: ready at %s (unix_ns=%d)", now.UTC().Format(time.RFC3339Nano), now.UnixNano())
}

// serveUntil serves until ctx is done (then drains the requests in
// flight), the server fails, or another rank of the group is lost.
func (s *server) serveUntil(ctx context.Context, srv *http.Server, errc <-chan error, lost <-chan error) error {
	o, lg := s.o, s.log
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	case why := <-lost:
		lg.Printf("sim: rank %d: a rank left the group (%v); exiting, as the engines' ranks do when one connection breaks", o.NodeRank, why)
		return fmt.Errorf("rank %d of %d: the group is broken: %v", o.NodeRank, o.NNodes, why)
	}
	lg.Printf("sim: shutting down, draining %d in-flight requests (unix_ns=%d)", s.running.Load(), time.Now().UnixNano())
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		lg.Printf("sim: shutdown: %v", err)
	}
	lg.Printf("sim: stopped (unix_ns=%d)", time.Now().UnixNano())
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *server) spawnChild() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"sim", "--idle-child"}
	if s.o.IgnoreSIGTERM {
		args = append(args, "--ignore-sigterm")
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("spawn child: %w", err)
	}
	s.log.Printf("sim: spawned child pid %d", cmd.Process.Pid)
	go cmd.Wait() //nolint:errcheck // reaped; its exit does not matter
	return nil
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("POST /v1/chat/completions", s.completion(true))
	mux.HandleFunc("POST /v1/completions", s.completion(false))
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("POST /v1/rerank", s.rerank)
	mux.HandleFunc("POST /rerank", s.rerank)
	mux.HandleFunc("POST /tokenize", s.tokenize)
	mux.HandleFunc("POST /v1/audio/transcriptions", s.transcribe)
	mux.HandleFunc("POST /v1/audio/translations", s.transcribe)
	mux.HandleFunc("POST /v1/audio/speech", s.speak)
	mux.HandleFunc("POST /v1/images/generations", s.image)
	mux.HandleFunc("POST /v1/images/edits", s.image)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /api/version", s.ollamaVersion)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gantry sim (%s) serving %s\n", s.o.Flavor, s.o.Model)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // client gone
}

func writeErr(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": status}})
}

func (s *server) notReady(w http.ResponseWriter) bool {
	if s.ready.Load() {
		return false
	}
	msg := imitation(s.o.Flavor).Loading
	if msg == "" {
		msg = "model is loading"
	}
	writeErr(w, http.StatusServiceUnavailable, "unavailable_error", msg)
	return true
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	if s.notReady(w) {
		return
	}
	n := s.healthOK.Add(1)
	if s.o.FailHealthAfter > 0 && n > int64(s.o.FailHealthAfter) {
		writeErr(w, http.StatusInternalServerError, "server_error", "simulated health failure")
		return
	}
	if body := imitation(s.o.Flavor).ReadyBody; body != "" {
		writeJSON(w, http.StatusOK, json.RawMessage(body))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *server) ollamaVersion(w http.ResponseWriter, r *http.Request) {
	v := imitation(s.o.Flavor).Version
	if v == "" {
		http.NotFound(w, r)
		return
	}
	if s.notReady(w) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"version": v})
}

func (s *server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{
		map[string]any{"id": s.o.Model, "object": "model", "created": 0, "owned_by": "gantry-sim"},
	}})
}

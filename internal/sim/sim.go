// Package sim is gantry's simulated inference engine: an OpenAI-compatible
// server with an engine's health semantics, paced token streams and faults
// on demand. Tests, the demo and the benchmarks run it as a real process
// (`gantry sim`) so that everything around it is exercised for real.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"math"
	"math/rand/v2"
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
)

// Flavors are the engines whose health semantics the sim can imitate.
var Flavors = []string{"vllm", "sglang", "ollama", "llamacpp", "trtllm"}

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
	return nil
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
}

// Run serves until ctx is done or SIGTERM arrives (then it drains in-flight
// requests for up to 10 s). It writes its log to out.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
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

	addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}

	// Engines differ in what a client sees while they load: vLLM and
	// trtllm-serve open their port only when ready; SGLang opens it midway
	// and answers 503 until warm-up ends; llama-server and Ollama listen at
	// once (llama-server answers 503 "Loading model").
	// loaded closes when the load is over: after LoadTime, or at SIGUSR1
	// with LoadUntilSignal (a test ends the load when it is ready to).
	loaded := make(chan struct{})
	if o.LoadUntilSignal {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			defer signal.Stop(usr1)
			select {
			case <-usr1:
				close(loaded)
			case <-sigCtx.Done():
			}
		}()
	} else {
		go func() {
			if sleepCtx(sigCtx, o.LoadTime) {
				close(loaded)
			}
		}()
	}
	// listenDue fires when the port opens before the load is over; nil
	// means at its end (the same channel as readiness, so a probe never
	// finds the port open and the engine not ready).
	var listenDue <-chan time.Time
	switch {
	case o.HangLoad && (o.Flavor == "vllm" || o.Flavor == "trtllm"):
		listenDue = time.After(0) // listen, but never turn ready, so probes see why
	case o.Flavor == "vllm" || o.Flavor == "trtllm":
	case o.Flavor == "sglang" && !o.LoadUntilSignal:
		listenDue = time.After(o.LoadTime / 2)
	default:
		listenDue = time.After(0)
	}
	select {
	case <-loaded:
	case <-listenDue:
	case <-sigCtx.Done():
		lg.Printf("sim: stopped while loading")
		return nil
	}
	markReady := func() {
		now := time.Now()
		s.readyNS.Store(now.UnixNano())
		s.ready.Store(true)
		lg.Printf("sim: ready at %s (unix_ns=%d)", now.UTC().Format(time.RFC3339Nano), now.UnixNano())
	}
	loadedNow := false
	select {
	case <-loaded:
		loadedNow = true
	default:
	}
	if loadedNow && !o.HangLoad {
		markReady() // before the port opens: no probe sees it open and not ready
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
				markReady()
			case <-sigCtx.Done(): // stopped while loading
			}
		}()
	}
	select {
	case <-sigCtx.Done():
	case err := <-errc:
		return err
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
	if s.o.Flavor == "llamacpp" {
		writeErr(w, http.StatusServiceUnavailable, "unavailable_error", "Loading model")
	} else {
		writeErr(w, http.StatusServiceUnavailable, "unavailable_error", "model is loading")
	}
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
	if s.o.Flavor == "llamacpp" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *server) ollamaVersion(w http.ResponseWriter, r *http.Request) {
	if s.o.Flavor != "ollama" {
		http.NotFound(w, r)
		return
	}
	if s.notReady(w) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"version": "0.6.5-sim"})
}

func (s *server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{
		map[string]any{"id": s.o.Model, "object": "model", "created": 0, "owned_by": "gantry-sim"},
	}})
}

type completionRequest struct {
	Model               string          `json:"model"`
	Stream              bool            `json:"stream"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
}

var words = []string{"Hallo", " from", " the", " simulated", " engine", ",", " one", " token", " at", " a", " time", "."}

// quotedWords are words as JSON strings, for the stream's hand-built events.
var quotedWords = func() [][]byte {
	q := make([][]byte, len(words))
	for i, w := range words {
		q[i], _ = json.Marshal(w)
	}
	return q
}()

// done counts a finished request and crashes the process when
// --crash-after says so.
func (s *server) done() {
	n := s.served.Add(1)
	if s.o.CrashAfter > 0 && n >= int64(s.o.CrashAfter) {
		s.crashMu.Lock() // never unlocked: we exit
		s.log.Printf("sim: crashing after %d requests (--crash-after)", n)
		os.Exit(3)
	}
}

func (s *server) completion(chat bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// When the request arrived and when the sim turned ready: the
		// benchmark's cold-start figure is the difference.
		w.Header().Set("X-Sim-Received-Unix-Ns", strconv.FormatInt(time.Now().UnixNano(), 10))
		w.Header().Set("X-Sim-Ready-Unix-Ns", strconv.FormatInt(s.readyNS.Load(), 10))
		s.total.Add(1)
		if s.notReady(w) {
			return
		}
		var req completionRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
			return
		}
		n := s.o.Tokens
		for _, p := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
			if p != nil && *p > 0 && *p < n {
				n = *p
			}
		}
		finish := "stop"
		if n < s.o.Tokens {
			finish = "length"
		}
		prompt := len(strings.Fields(string(req.Messages) + string(req.Prompt)))
		s.running.Add(1)
		defer s.running.Add(-1)
		defer s.done()
		id := fmt.Sprintf("sim-%d", s.total.Load())
		created := time.Now().Unix()
		usage := map[string]int{"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
		ctx := r.Context()
		if !req.Stream {
			if !sleepCtx(ctx, s.o.TTFT+time.Duration(n-1)*s.o.ITL) {
				return
			}
			var text strings.Builder
			for i := 0; i < n; i++ {
				text.WriteString(words[i%len(words)])
			}
			s.tokens.Add(int64(n))
			choice := map[string]any{"index": 0, "finish_reason": finish}
			obj := "text_completion"
			if chat {
				obj = "chat.completion"
				choice["message"] = map[string]any{"role": "assistant", "content": text.String()}
			} else {
				choice["text"] = text.String()
			}
			writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": obj, "created": created,
				"model": s.o.Model, "choices": []any{choice}, "usage": usage})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		s.stream(ctx, w, streamHead{chat: chat, id: id, created: created, model: s.o.Model}, n, finish, usage)
	}
}

// streamHead is what every event of one stream repeats.
type streamHead struct {
	chat    bool
	id      string
	created int64
	model   string
}

// stream sends n token events, a usage event and [DONE]. Token i is due at
// TTFT + i×ITL from the start, as a GPU's steady decode produces them:
// time spent writing (or a busy CPU) does not stretch the stream, so a
// benchmark sees the pace it asked for. Each event is appended by hand
// into one buffer: with hundreds of streams the sim must cost less CPU
// than the gateway it is measured against.
func (s *server) stream(ctx context.Context, w http.ResponseWriter, h streamHead, n int, finish string, usage map[string]int) {
	fl, _ := w.(http.Flusher)
	obj := "text_completion"
	if h.chat {
		obj = "chat.completion.chunk"
	}
	tail, _ := json.Marshal(map[string]any{"created": h.created, "id": h.id, "model": h.model, "object": obj})
	tail = tail[1:] // `"created":…}`: each event is {"choices":[…],` + tail
	buf := make([]byte, 0, 512)
	send := func(choice []byte, extra []byte) bool {
		buf = append(buf[:0], `data: {"choices":[`...)
		buf = append(buf, choice...)
		buf = append(buf, "],"...)
		if extra != nil {
			buf = append(buf, extra...)
			buf = append(buf, ',')
		}
		if s.o.StampEvents {
			// A benchmark's clock on the same machine subtracts this
			// from the arrival: the event's delivery time.
			buf = append(buf, tail[:len(tail)-1]...)
			buf = append(buf, `,"sim_unix_ns":`...)
			buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
			buf = append(buf, '}')
		} else {
			buf = append(buf, tail...)
		}
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	began := time.Now()
	var choice []byte
	for i := 0; i < n; i++ {
		if !sleepCtx(ctx, time.Until(began.Add(s.o.TTFT+time.Duration(i)*s.o.ITL))) {
			return
		}
		word := quotedWords[i%len(quotedWords)]
		fr := []byte("null")
		if i == n-1 {
			fr, _ = json.Marshal(finish)
		}
		if h.chat {
			choice = append(choice[:0], `{"delta":{"content":`...)
			choice = append(choice, word...)
			if i == 0 {
				choice = append(choice, `,"role":"assistant"`...)
			}
			choice = append(choice, '}')
		} else {
			choice = append(choice[:0], `{"text":`...)
			choice = append(choice, word...)
		}
		choice = append(choice, `,"finish_reason":`...)
		choice = append(choice, fr...)
		choice = append(choice, `,"index":0}`...)
		if !send(choice, nil) {
			return
		}
		s.tokens.Add(1)
	}
	u, _ := json.Marshal(usage)
	send(nil, append([]byte(`"usage":`), u...))
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

func (s *server) embeddings(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	if !s.o.Embed {
		writeErr(w, http.StatusNotFound, "invalid_request_error", "this model does not serve embeddings (start the sim with --embedding)")
		return
	}
	if s.notReady(w) {
		return
	}
	var req struct {
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
		return
	}
	var inputs []string
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(req.Input, &inputs); err != nil || len(inputs) == 0 {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "input must be a string or a list of strings")
		return
	}
	s.running.Add(1)
	defer s.running.Add(-1)
	defer s.done()
	if !sleepCtx(r.Context(), s.o.TTFT) {
		return
	}
	data := make([]any, len(inputs))
	tokens := 0
	for i, in := range inputs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Vector(in, s.o.Dims)}
		tokens += len(strings.Fields(in))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "model": s.o.Model, "data": data,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
}

func (s *server) rerank(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	if s.notReady(w) {
		return
	}
	var req struct {
		Query     string   `json:"query"`
		Documents []string `json:"documents"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil || len(req.Documents) == 0 {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "want {\"query\": ..., \"documents\": [...]}")
		return
	}
	defer s.done()
	q := Vector(req.Query, 16)
	results := make([]any, len(req.Documents))
	for i, d := range req.Documents {
		v := Vector(d, 16)
		score := 0.0
		for j := range v {
			score += q[j] * v[j]
		}
		results[i] = map[string]any{"index": i, "relevance_score": score}
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": s.o.Model, "results": results})
}

// Vector is the sim's deterministic embedding of text: a unit vector of
// dims numbers seeded by the text's hash, so equal inputs embed equally.
func Vector(text string, dims int) []float64 {
	h := fnv.New64a()
	h.Write([]byte(text))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x9e3779b97f4a7c15))
	v := make([]float64, dims)
	var norm float64
	for i := range v {
		v[i] = rng.NormFloat64()
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] = math.Round(v[i]/norm*1e6) / 1e6
	}
	return v
}

// metrics answers in the flavour's own metric names, the ones gantry's
// collector normalises.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	// The sim runs every request at once, as one unbounded batch: nothing
	// ever waits, so the queue gauges say 0.
	run, wait := s.running.Load(), int64(0)
	lbl := fmt.Sprintf(`{model_name=%q}`, s.o.Model)
	var b strings.Builder
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s%s %g\n", name, help, name, name, lbl, v)
	}
	counter := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s%s %g\n", name, help, name, name, lbl, v)
	}
	usage := math.Min(1, float64(run)*0.05)
	switch s.o.Flavor {
	case "vllm":
		gauge("vllm:num_requests_running", "Number of requests in model execution batches.", float64(run))
		gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", float64(wait))
		gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage)
		counter("vllm:generation_tokens_total", "Number of generation tokens processed.", float64(s.tokens.Load()))
	case "sglang":
		gauge("sglang:num_running_reqs", "The number of running requests.", float64(run))
		gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", float64(wait))
		gauge("sglang:token_usage", "The token usage.", usage)
		counter("sglang:generation_tokens_total", "Number of generation tokens processed.", float64(s.tokens.Load()))
	case "llamacpp":
		gauge("llamacpp:requests_processing", "Number of requests processing.", float64(run))
		gauge("llamacpp:requests_deferred", "Number of requests deferred.", float64(wait))
		gauge("llamacpp:kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", usage)
		counter("llamacpp:tokens_predicted_total", "Number of generation tokens processed.", float64(s.tokens.Load()))
	case "trtllm":
		gauge("trtllm_num_requests_running", "Number of running requests.", float64(run))
	default:
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, b.String()) //nolint:errcheck
}

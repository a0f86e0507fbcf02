package gateway

import (
	"encoding/json"
	"net/http"
	"runtime"
	"time"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/telemetry"
)

// request is one gateway request's state, from its arrival to its record.
// It is the writer every handler answers through — so it sees the status,
// the first byte and the events that go out — and it carries what the
// request learns on its way: the metrics label, whether gantry sent the
// answer's headers itself, and the activity log's record.
type request struct {
	http.ResponseWriter // the client's
	r                   *http.Request
	began               time.Time
	// label is the metrics label: the configured name of the model, never
	// a made-up one ("-" while unknown).
	label  string
	code   int       // the status sent; 0 until the answer starts
	first  time.Time // when the answer's first byte went out
	events int       // server-sent events relayed (about one per token)
	// early: gantry sent a stream's headers itself while the model loaded;
	// the engine's answer, and any error, go into that stream.
	early bool
	// streaming: the answer is a stream whose usage is found in its events
	// (or its translator's count), so the record keeps no tail of it.
	streaming bool
	ex        exchange // the activity log's record (log off: ex.on is false)
	// span is the request's trace (nil: tracing off or not sampled).
	span *telemetry.Request
	// held is what the request holds of max_body_total — its body and
	// every copy made of it — given back when it finishes.
	held int64
}

// begin starts the state of a request; finish reports it when done.
func (g *Gateway) begin(w http.ResponseWriter, r *http.Request) *request {
	g.quiet.Begin()
	q := &request{ResponseWriter: w, r: r, began: time.Now(), label: "-"}
	q.ex.on = g.act != nil
	if g.tel != nil {
		q.span = g.tel.Begin(r)
	}
	return q
}

// finish reports a finished request to the observer and the activity log.
func (g *Gateway) finish(q *request) {
	defer g.quiet.End()
	g.bodies.Add(-q.held)
	if q.held >= bodyToCollect {
		g.collect()
	}
	q.held = 0
	var ttfb time.Duration
	if !q.first.IsZero() {
		ttfb = q.first.Sub(q.began)
	}
	code := q.code
	if code == 0 {
		code = 499 // the client went away before an answer
	}
	g.obs.Request(q.label, q.r.URL.Path, code, time.Since(q.began), ttfb, q.events)
	if q.span != nil {
		prompt, completion := q.ex.tokensSoFar()
		q.span.End(code, q.label, q.first, prompt, completion)
	}
	g.record(q, ttfb, code)
}

// engineHeader is the header to send the engine (or a peer) for a request:
// h itself, or, when the request is traced, a copy carrying the answer
// span's traceparent (peer names the peer it goes to).
func (q *request) engineHeader(h http.Header, model, peer string) http.Header {
	if q.span == nil {
		return h
	}
	h = h.Clone()
	q.span.Answer(model, peer, h)
	return h
}

// bodyToCollect is what a request must have held for its end to start a GC.
const bodyToCollect = 4 << 20

// collect starts a garbage collection unless one it started still runs: a
// finished request's large body is memory until the GC takes it, and by
// default the GC waits for the heap to double — twenty 31 MB bodies under
// a 256 MiB max_body_total peaked at 435 MB. The heap is mostly bodies,
// byte slices with nothing to scan: a cycle costs little.
func (g *Gateway) collect() {
	if g.collecting.CompareAndSwap(false, true) {
		go func() {
			runtime.GC()
			g.collecting.Store(false)
		}()
	}
}

// hold counts a copy of a body the request made (rewritten for a pinned
// address, an alias, a preset or usage; translated) against
// max_body_total until it finishes: it is memory until the GC takes it.
func (g *Gateway) hold(q *request, b []byte) []byte {
	g.holdBytes(q, len(b))
	return b
}

// holdBytes counts n bytes the request holds in another form (a parsed
// body) against max_body_total until it finishes, and returns what all
// requests hold now.
func (g *Gateway) holdBytes(q *request, n int) int64 {
	q.held += int64(n)
	return g.bodies.Add(int64(n))
}

// act is the request's activity record, nil when the log is off.
func (q *request) act() *exchange {
	if !q.ex.on {
		return nil
	}
	return &q.ex
}

// leased notes who serves the request: the metrics label and the record.
func (q *request) leased(l *sched.Lease) {
	q.label = l.Model.Name
	if x := q.act(); x != nil {
		x.served, x.fallback, x.cold, x.waited = l.Model.Name, l.FallbackFor != "", l.Cold, l.Waited
		x.leasedAt = time.Now()
	}
	if q.span != nil && l.Waited > 0 {
		now := time.Now()
		q.span.Waited(l.Model.Name, now.Add(-l.Waited), now)
	}
}

// gone reports whether the client went away.
func (q *request) gone() bool { return q.r.Context().Err() != nil }

func (q *request) WriteHeader(code int) {
	if q.code == 0 {
		q.code = code
	}
	q.ResponseWriter.WriteHeader(code)
}

func (q *request) Write(b []byte) (int, error) {
	if q.code == 0 {
		q.code = http.StatusOK
	}
	if q.first.IsZero() {
		q.first = time.Now()
	}
	if q.ex.on && (!q.streaming || q.code >= 400) {
		q.ex.keep(q.code, b)
	}
	return q.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush.
func (q *request) Unwrap() http.ResponseWriter { return q.ResponseWriter }

// lease waits for a ready engine of name (a plain answer: no keep-alives
// while it loads) and notes it; nil when there is none, the error answered
// unless the client went away.
func (g *Gateway) lease(q *request, name string) *sched.Lease {
	l, err := g.sched.AcquireAs(q.r.Context(), name, priorityOf(q.r))
	if err != nil {
		if !q.gone() {
			apierr.WriteErr(q, err)
		}
		return nil
	}
	q.leased(l)
	return l
}

// streamError ends a stream whose headers are out with an OpenAI-shaped
// error event: the one writer of that event. Marshalled, never formatted:
// a message may hold an engine's log line cut inside a character, and JSON
// takes only valid UTF-8 (Marshal puts U+FFFD for the cut bytes).
func streamError(w http.ResponseWriter, code, msg string) {
	b, _ := json.Marshal(streamErr{Error: streamErrBody{Message: msg, Type: "server_error", Code: code}})
	b = append(append([]byte("data: "), b...), "\n\n"...)
	w.Write(b)                            //nolint:errcheck // the client may be gone
	http.NewResponseController(w).Flush() //nolint:errcheck // the client may be gone
}

type streamErr struct {
	Error streamErrBody `json:"error"`
}

type streamErrBody struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
}

// cutShort ends an answer that was cut: a stream with an error event that
// says why (not a silent hang or cut), a plain answer by aborting the
// connection, since it cannot carry the error.
func cutShort(w http.ResponseWriter, sse bool, msg string) {
	if !sse {
		panic(http.ErrAbortHandler)
	}
	streamError(w, "upstream_error", msg)
}

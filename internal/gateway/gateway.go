// Package gateway is gantry's OpenAI-compatible front door: it reads the
// model from the request body, asks the scheduler for a ready engine
// (starting, switching or waiting as needed) and relays the request and the
// response, streaming server-sent events as they arrive.
package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/guard"
	"github.com/gantryhq/gantry/internal/peers"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/telemetry"
	"github.com/gantryhq/gantry/internal/translate"
	"github.com/gantryhq/gantry/internal/trim"
)

// Observer records finished requests (the metrics package is one).
type Observer interface {
	// Request reports one finished request; chunks counts the SSE events
	// of a stream (about one per token), 0 for a plain answer.
	Request(model, route string, code int, total, ttfb time.Duration, chunks int)
}

type noObserver struct{}

func (noObserver) Request(string, string, int, time.Duration, time.Duration, int) {}

// Gateway relays OpenAI-compatible requests to the engines.
type Gateway struct {
	sched  *sched.Scheduler
	logger *slog.Logger
	obs    Observer
	up     *upstream
	// bufs serve plain answers, read in large pieces; sseBufs serve
	// streams, whose events are small and which hold their buffer for the
	// whole answer (500 streams × 32 KiB was a third of the heap).
	bufs, sseBufs sync.Pool
	// bodies counts the request body bytes held in memory, all requests
	// together, against max_body_total.
	bodies atomic.Int64
	// collecting: a GC collect started still runs.
	collecting atomic.Bool
	// native remembers which engines do not speak a translated API natively.
	native nativeAPIs
	// act, when set, gets a record of every request; keyName names keys.
	act     ActivityLog
	keyName func(*http.Request) string
	// peers, when set, are the other boxes whose models are listed and
	// relayed to.
	peers *peers.Set
	// tel traces requests (nil: tracing off, which costs a nil check).
	tel *telemetry.Tracer
	// quiet hears each request begin and end, to trim the heap once none
	// is in flight (nil: off).
	quiet *trim.Quiet
	// started is when the gateway was made: the modified time of models
	// without a file (the built-in demo) in Ollama's lists.
	started time.Time
}

// SetTracer makes the gateway trace its requests (nil: off). Call before
// serving.
func (g *Gateway) SetTracer(t *telemetry.Tracer) { g.tel = t }

// SetQuiet tells q when each request begins and ends, so that it trims
// the heap once the gateway is quiet (nil: off). Call before serving.
func (g *Gateway) SetQuiet(q *trim.Quiet) { g.quiet = q }

// New returns the gateway of a scheduler; obs may be nil.
func New(s *sched.Scheduler, logger *slog.Logger, obs Observer) *Gateway {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = noObserver{}
	}
	return &Gateway{
		sched:   s, // nil only in benchmarks of the relay alone
		logger:  logger,
		obs:     obs,
		started: time.Now(),
		// A burst of streams reuses warm connections: up to 1024 per engine.
		up:      newUpstream(1024),
		bufs:    sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }},
		sseBufs: sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }},
	}
}

// Close drops idle upstream connections.
func (g *Gateway) Close() { g.up.closeIdle("") }

// EngineGone drops the idle connections to the engine at baseURL: it went
// away, and a connection pooled to it must not serve its successor.
func (g *Gateway) EngineGone(baseURL string) {
	g.up.closeIdle(engineAddr(baseURL))
	g.native.forget(engineAddr(baseURL))
}

// engineAddr is the host:port of an engine's base URL, the key of its
// pooled connections: forward and EngineGone must agree on it.
func engineAddr(baseURL string) string { return strings.TrimPrefix(baseURL, "http://") }

// modelEntry is one item of GET /v1/models, with gantry's view added.
type modelEntry struct {
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	OwnedBy string     `json:"owned_by"`
	Gantry  gantryInfo `json:"gantry"`
}

type gantryInfo struct {
	State    string `json:"state"`
	Engine   string `json:"engine"`
	AliasOf  string `json:"alias_of,omitempty"`
	PresetOf string `json:"preset_of,omitempty"`
	Slot     string `json:"slot,omitempty"`
	// Peer names the other gantry that serves the model.
	Peer string `json:"peer,omitempty"`
}

// modelList is every name a request may use: models, aliases, presets,
// and — for a request not from a peer — the peers' models.
func (g *Gateway) modelList(r *http.Request) []modelEntry {
	st := g.sched.Status()
	data := []modelEntry{}
	byName := map[string]gantryInfo{}
	for _, m := range st.Models {
		if m.Rank > 0 {
			continue // a rank of a group another box leads: served there, listed by that peer
		}
		info := gantryInfo{State: string(m.State), Engine: m.Engine, Slot: m.Slot}
		byName[m.Name] = info
		data = append(data, modelEntry{ID: m.Name, Object: "model", OwnedBy: "gantry", Gantry: info})
		for _, a := range m.Aliases {
			ai := info
			ai.AliasOf = m.Name
			data = append(data, modelEntry{ID: a, Object: "model", OwnedBy: "gantry", Gantry: ai})
		}
	}
	cfg := g.sched.Config()
	for _, name := range slices.Sorted(maps.Keys(cfg.Presets)) {
		if m := cfg.Resolve(cfg.Presets[name].Model); m != nil {
			pi := byName[m.Name]
			pi.PresetOf = m.Name
			data = append(data, modelEntry{ID: name, Object: "model", OwnedBy: "gantry", Gantry: pi})
		}
	}
	if g.relayable(r) {
		data = append(data, g.peerModels(data)...)
	}
	return g.visible(auth.From(r.Context()), data)
}

func (g *Gateway) models(w http.ResponseWriter, r *http.Request) {
	data := g.modelList(r)
	if p, ok := pinOf(r); ok {
		data = pinnedList(g.sched.Config(), p, data)
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// hopHeaders are not relayed (RFC 9110 §7.6.1, and the headers a
// Connection header names: connectionNamed), nor is the client's key, nor
// what only a browser sends about the page it came from.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Authorization": true, "Content-Length": true, "X-Api-Key": true,
	"Expect": true, // gantry already has the whole body; the engine must not answer 100 first
	"Origin": true, "Referer": true, "Cookie": true,
	"Sec-Fetch-Site": true, "Sec-Fetch-Mode": true, "Sec-Fetch-Dest": true, "Sec-Fetch-User": true,
}

// connectionNamed returns the headers h's Connection header lists: they
// are hop-by-hop too (RFC 9110 §7.6.1). Nil, and free, when there is none.
func connectionNamed(h http.Header) map[string]bool {
	vs := h["Connection"]
	if len(vs) == 0 {
		return nil
	}
	named := map[string]bool{}
	for _, v := range vs {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				named[http.CanonicalHeaderKey(tok)] = true
			}
		}
	}
	return named
}

func (g *Gateway) relay(w http.ResponseWriter, r *http.Request) {
	q := g.begin(w, r)
	defer g.finish(q)
	g.serve(q)
}

func (g *Gateway) serve(q *request) {
	r := q.r
	body, ok := g.requestBody(q)
	if !ok {
		return
	}
	if pinned := g.pinBody(r, body); unsafe.SliceData(pinned) != unsafe.SliceData(body) {
		body = g.hold(q, pinned)
	}
	f, err := topFields(body)
	name, start, end, found := f.model, f.start, f.end, f.found
	switch {
	case errors.Is(err, ErrAmbiguousModel):
		apierr.Write(q, http.StatusBadRequest, "invalid_request_error", "ambiguous_model", err.Error())
		return
	case err != nil:
		apierr.Write(q, http.StatusBadRequest, "invalid_request_error", "invalid_json", "the body is not valid JSON: "+err.Error())
		return
	case !found || name == "":
		apierr.Write(q, http.StatusBadRequest, "invalid_request_error", "model_missing",
			`the body names no "model"; known models: `+g.knownNames(r))
		return
	}
	target, preset := g.resolvePreset(name)
	key, ok := g.admit(q, r, name, nil)
	if !ok {
		return
	}
	defer endAdmitted(key)
	x := q.act()
	if x != nil {
		x.asked, x.stream = name, f.stream
		if preset != nil {
			x.preset = name
		}
		if f.stream && !f.streamOptions && (r.URL.Path == "/v1/chat/completions" || r.URL.Path == "/v1/completions") {
			x.stripUsage = true
		}
	}
	if preset == nil && g.relayable(r) {
		if p, err := g.peerFor(r, target); p != nil || err != nil {
			q.label = g.labelOf(target)
			if err != nil {
				apierr.WriteErr(q, err)
				return
			}
			if g.toPeer(q, p, target, body, nil) {
				return
			}
		}
	}
	lease, err := g.acquire(q, target, f.stream, preset)
	if err != nil {
		g.unleased(q, target, preset != nil, body, err)
		return
	}
	defer lease.Release()
	q.leased(lease)
	if lease.FallbackFor != "" {
		q.label = lease.FallbackFor // the model asked for: the fallback's caller
	}
	var edits []edit
	switch served := lease.Model.ServedName(); {
	case preset != nil:
		if body, err = preset.apply(body, served); err != nil {
			apierr.Write(q, http.StatusBadRequest, "invalid_request_error", "invalid_json", err.Error())
			return
		}
		g.hold(q, body)
	case served != name:
		// An alias, a fallback or an Ollama tag: say it as the engine knows it.
		edits = append(edits, modelEdit(start, end, served))
	}
	if x != nil && x.stripUsage {
		if e, ok := usageEdit(body); ok { // before the model: the object's first member
			edits = append([]edit{e}, edits...)
		}
	}
	if rn := engine.Renamed(lease.Model.Engine); rn != nil { // an engine's quirk: nil for most
		edits = renameEdits(edits, body, rn)
	}
	g.forward(q, lease, g.rewritten(q, body, edits))
}

// requestBody reads the request's body within the limits, answering the
// client when it cannot (too large, the gateway's bodies full, a broken
// read).
func (g *Gateway) requestBody(q *request) ([]byte, bool) {
	body, err := g.readBody(q)
	if err == nil {
		return body, true
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		apierr.Write(q, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
			fmt.Sprintf("the request body is over the gateway's limit of %s (max_body in the config)", config.FormatBytes(tooBig.Limit)))
	case errors.Is(err, errBodiesFull):
		q.Header().Set("Retry-After", "1")
		apierr.Write(q, http.StatusServiceUnavailable, "server_error", "busy", err.Error())
	default:
		apierr.Write(q, http.StatusBadRequest, "invalid_request_error", "bad_body", "could not read the request body: "+err.Error())
	}
	return nil, false
}

// unleased answers a request whose target could not be leased (err): a
// peer that has the model takes it when one can (not for a preset, nor
// once loading notes went out), else the error goes to the client — as an
// error event in a stream that began.
func (g *Gateway) unleased(q *request, target string, preset bool, body []byte, err error) {
	if p := g.failover(q.r, target); p != nil && !q.early && !preset {
		q.label = g.labelOf(target)
		if g.relayPeer(q, p, body) == nil {
			return
		}
	}
	// The metrics label is the configured name, never a made-up one;
	// resolved here, off the path of the requests that succeed.
	if m := g.sched.Config().Resolve(target); m != nil {
		q.label = m.Name
	}
	if q.early {
		streamError(q, apierr.Map(err).Code, err.Error())
		return
	}
	if !q.gone() { // else the client went away while the model loaded: nobody to answer
		apierr.WriteErr(q, err)
	}
}

// acquire leases a ready engine for target: at once when it is ready, else
// waiting for it — for a streamed request with keep-alives (and a chat's
// loading note) while it loads.
func (g *Gateway) acquire(q *request, target string, stream bool, p *preset) (*sched.Lease, error) {
	prio := priorityOf(q.r)
	if l := g.sched.TryAcquireAs(target, prio); l != nil {
		return l, nil
	}
	if !stream {
		return g.sched.AcquireAs(q.r.Context(), target, prio)
	}
	var note func(model, load string, waited time.Duration) []byte
	if q.r.URL.Path == "/v1/chat/completions" && g.wantsNote(target, p) {
		note = loadingNote
	}
	return g.acquireStreaming(q, target, note)
}

// errBodiesFull says max_body_total is reached.
var errBodiesFull = errors.New("gantry holds as many request bodies as max_body_total allows; retry in a moment")

// bodyFirst is the most a body's first buffer takes before the body's
// bytes arrive. A claim is not bytes: 40 connections claiming 32 MiB each
// and sending 11 bytes take kilobytes; a body larger than this buffer gets
// one of its announced size once the buffer is full (its bytes are
// arriving), else buffers that double.
const bodyFirst = 64 << 10

// readBody reads the whole body (the model is in it) within max_body, into
// one buffer: a larger body moves to a larger buffer, never into pieces
// joined at the end (a second copy of every large body, which max_body_total
// did not see). Every buffer counts against max_body_total for all requests
// together (q.held), the one left behind by a move too: it is memory until
// the GC takes it.
func (g *Gateway) readBody(q *request) (body []byte, err error) {
	r := q.r
	cfg := g.sched.Config()
	limit := int64(cfg.MaxBody)
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	total := int64(cfg.MaxBodyTotal)
	take := func(n int64) bool { return g.holdBytes(q, int(n)) <= total }
	rd := http.MaxBytesReader(nil, r.Body, limit)
	// +1: room to read the end of a body whose length was announced.
	buf := make([]byte, min(max(r.ContentLength+1, 512), bodyFirst))
	if !take(int64(len(buf))) {
		return nil, errBodiesFull
	}
	n := 0
	for {
		k, err := io.ReadFull(rd, buf[n:])
		n += k
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return buf[:n], nil
		case err != nil:
			return nil, err
		}
		// Full: a larger buffer, of the announced length when there is one.
		size := int64(len(buf)) * 2
		if r.ContentLength >= int64(len(buf)) {
			size = r.ContentLength + 1
		}
		size = min(size, limit+1)
		if !take(size) {
			return nil, errBodiesFull
		}
		grown := make([]byte, size)
		copy(grown, buf[:n])
		buf = grown
	}
}

func (g *Gateway) forward(q *request, lease *sched.Lease, body outBody) {
	resp, err := g.up.sendBody(engineAddr(lease.BaseURL), q.r, q.r.Method, q.r.URL.RequestURI(), q.engineHeader(q.r.Header, lease.Model.Name, ""), body)
	if err != nil {
		if q.gone() {
			return // the cancelled context already told the engine
		}
		if q.early {
			streamError(q, "upstream_error", g.deadMessage(lease, err))
			return
		}
		g.upstreamDead(q, lease, err)
		return
	}
	defer resp.Body.Close()
	if q.early {
		// gantry's own headers went out while the model loaded: the
		// engine's answer goes into that stream, an error as an event.
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			streamError(q, "engine_error", fmt.Sprintf("%s: %s", lease.Model.Name, translate.EngineError(b)))
			return
		}
		g.copyBody(q, resp, lease, true)
		return
	}
	g.writeHead(q, resp, lease)
	sse := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if ub, ok := resp.Body.(*upstreamBody); sse && ok && !ub.buffered() {
		// The engine sent its headers and is still at the prompt (a long
		// prefill takes seconds): the client gets them now, as it would
		// from the engine. When the first event came with them, both go
		// out in one write below.
		http.NewResponseController(q).Flush() //nolint:errcheck // a gone client shows at the first write
	}
	g.copyBody(q, resp, lease, sse)
}

// answerHeaders copies an answer's headers (an engine's or a peer's) to
// the client's, less the hop-by-hop ones and CORS: gantry answers CORS
// itself, and an engine's Access-Control-* (vLLM sends *, llama-server
// reflects any origin) never reaches a browser.
func answerHeaders(dst, src http.Header) {
	named := connectionNamed(src)
	for k, vs := range src {
		if !hopHeaders[k] && !guard.CORSHeader(k) && !named[k] {
			dst[k] = vs
		}
	}
}

// writeHead writes the engine's status and headers, less the hop-by-hop
// and CORS ones, with gantry's own.
func (g *Gateway) writeHead(w http.ResponseWriter, resp *http.Response, lease *sched.Lease) {
	h := w.Header()
	answerHeaders(h, resp.Header)
	h.Set("X-Gantry-Served-By", lease.Model.Name)
	if lease.FallbackFor != "" {
		h.Set("X-Gantry-Fallback-For", lease.FallbackFor)
	}
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
}

func (g *Gateway) deadMessage(lease *sched.Lease, err error) string {
	msg := fmt.Sprintf("the engine of %s failed: %v", lease.Model.Name, err)
	if p, perr := g.sched.Process(lease.Model.Name); perr == nil {
		st := p.Status()
		msg += fmt.Sprintf("; its state is %s", st.State)
		if st.LastLine != "" {
			msg += "; last log line: " + st.LastLine
		}
	}
	return msg
}

func (g *Gateway) upstreamDead(w http.ResponseWriter, lease *sched.Lease, err error) {
	apierr.Write(w, http.StatusBadGateway, "server_error", "upstream_error", g.deadMessage(lease, err))
}

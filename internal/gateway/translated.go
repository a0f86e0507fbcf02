package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/translate"
)

// call is one request of a translated API (Anthropic Messages, OpenAI
// Responses, Ollama's API), parsed and ready for an engine.
type call struct {
	model  string // the name the client asked for
	stream bool
	// native is the engine route that speaks this API itself ("" never
	// tried); nativeBody the client's body for it.
	native     string
	nativeBody []byte
	// path is the engine route of the translation; body builds its body
	// for the engine's name of the model.
	path string
	body func(served string) (any, error)
	// answer turns the engine's answer into the client's; newStream
	// translates a stream. asked is the client's model name.
	answer    func(engine []byte, asked string, took time.Duration) ([]byte, error)
	newStream func(asked string) translate.Stream
	// streamType is the content type of a streamed answer.
	streamType string
	// errorShape writes an error the way this API's clients read them.
	errorShape func(w http.ResponseWriter, status int, code, msg string)
	// after, when set, runs when the request is done and its lease given
	// back (Ollama's keep_alive: 0 stops the model).
	after func(model string)
	// notServed, when set, is what a 404 of the engine on path means.
	notServed string
	// empty, when set, answers a request that needs no engine round trip
	// once the model is ready (Ollama's load-only requests).
	empty func(w http.ResponseWriter, lease *sched.Lease)
}

// nativeAPIs remembers which engines answered 404 for an API's native
// route, so that they are asked in translation from then on; EngineGone
// forgets an engine (its successor may be another version).
type nativeAPIs struct{ m sync.Map } // "host:port route" → false

func (n *nativeAPIs) worth(addr, route string) bool {
	_, refused := n.m.Load(addr + " " + route)
	return !refused
}

func (n *nativeAPIs) refused(addr, route string) { n.m.Store(addr+" "+route, false) }

func (n *nativeAPIs) forget(addr string) {
	n.m.Range(func(k, _ any) bool {
		if addr == "" || strings.HasPrefix(k.(string), addr+" ") {
			n.m.Delete(k)
		}
		return true
	})
}

// translated serves a route whose requests parse turns into a call.
func (g *Gateway) translated(parse func(body []byte) (*call, error), errorShape func(w http.ResponseWriter, status int, code, msg string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := g.begin(w, r)
		defer g.finish(q)
		g.serveCall(q, parse, errorShape)
	}
}

func (g *Gateway) serveCall(q *request, parse func([]byte) (*call, error), errorShape func(http.ResponseWriter, int, string, string)) {
	body, err := g.readBody(q)
	if err != nil {
		a := bodyError(err)
		if a.RetryAfter != "" {
			q.Header().Set("Retry-After", a.RetryAfter)
		}
		errorShape(q, a.Status, a.Code, err.Error())
		return
	}
	body = g.pinBody(q.r, body)
	// One reading of the model, as on the OpenAI routes: the body may go
	// to the engine as it came (natively served APIs), where a second
	// "model" could be the one the engine reads.
	if _, err := topFields(body); errors.Is(err, ErrAmbiguousModel) {
		errorShape(q, http.StatusBadRequest, "ambiguous_model", err.Error())
		return
	}
	c, err := parse(body)
	g.holdBytes(q, len(body)) // the parsed request holds about as much again
	if err != nil {
		errorShape(q, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	c.errorShape = errorShape
	name, preset := g.resolvePreset(c.model)
	key, ok := g.admit(q, q.r, c.model, errorShape)
	if !ok {
		return
	}
	defer endAdmitted(key)
	if x := q.act(); x != nil {
		x.asked, x.stream = c.model, c.stream
		if preset != nil {
			x.preset = c.model
		}
	}
	// Ollama's API has no route on a peer's gateway: its models are served
	// here only.
	toPeer := preset == nil && !strings.HasPrefix(q.r.URL.Path, "/api/") && g.relayable(q.r)
	if toPeer {
		if p, err := g.peerFor(q.r, name); p != nil || err != nil {
			q.label = g.labelOf(name)
			if err != nil {
				writeShaped(q, errorShape, err)
				return
			}
			if g.toPeer(q, p, name, body, errorShape) {
				return
			}
		}
	}
	// Keep-alives while the model loads go as server-sent comments: only
	// into streams of events (Ollama's NDJSON has no comments).
	lease, err := g.acquire(q, name, c.stream && c.streamType == "text/event-stream", preset)
	if err != nil {
		if p := g.failover(q.r, name); toPeer && p != nil && !q.early {
			q.label = g.labelOf(name)
			if g.relayPeer(q, p, body) == nil {
				return
			}
		}
		if m := g.sched.Config().Resolve(name); m != nil {
			q.label = m.Name
		}
		if q.early {
			q.Write(c.newStream(c.model).Fail(err.Error())) //nolint:errcheck // client gone
			return
		}
		if !q.gone() {
			a := apierr.Map(err)
			if a.RetryAfter != "" {
				q.Header().Set("Retry-After", a.RetryAfter)
			}
			errorShape(q, a.Status, a.Code, err.Error())
		}
		return
	}
	defer func() {
		lease.Release()
		if c.after != nil {
			c.after(lease.Model.Name)
		}
	}()
	q.leased(lease)
	if c.empty != nil {
		c.empty(q, lease)
		return
	}
	addr := engineAddr(lease.BaseURL)
	if c.native != "" && preset == nil && !q.early && g.native.worth(addr, c.native) {
		if g.relayNative(q, lease, c) {
			return
		}
	}
	g.relayTranslated(q, lease, c, preset)
}

// bodyError is how a failure to read a request body is answered.
func bodyError(err error) apierr.Answer {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return apierr.Answer{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large"}
	case errors.Is(err, errBodiesFull):
		return apierr.Answer{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "busy", RetryAfter: "1"}
	}
	return apierr.Answer{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "bad_body"}
}

// relayNative sends the client's own body to an engine that serves the
// API itself, and relays its answer unchanged. It reports false (nothing
// written) when the engine does not know the route: then the request is
// translated.
func (g *Gateway) relayNative(q *request, lease *sched.Lease, c *call) bool {
	body := c.nativeBody
	if _, start, end, found, err := ModelField(body); err == nil && found {
		body = g.hold(q, ReplaceModel(body, start, end, lease.Model.ServedName()))
	}
	addr := engineAddr(lease.BaseURL)
	resp, err := g.up.send(addr, q.r, http.MethodPost, c.native, q.engineHeader(q.r.Header, lease.Model.Name, ""), body)
	if err != nil {
		if !q.gone() {
			c.errorShape(q, http.StatusBadGateway, "upstream_error", g.deadMessage(lease, err))
		}
		return true
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) //nolint:errcheck // drained for the connection's reuse
		resp.Body.Close()
		g.native.refused(addr, c.native)
		return false
	}
	defer resp.Body.Close()
	g.writeHead(q, resp, lease)
	g.copyBody(q, resp, lease, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
	return true
}

// relayTranslated sends the translated request and translates the answer.
func (g *Gateway) relayTranslated(q *request, lease *sched.Lease, c *call, preset *preset) {
	fail := func(status int, code, msg string) {
		if q.early {
			q.Write(c.newStream(c.model).Fail(msg)) //nolint:errcheck // client gone
			return
		}
		c.errorShape(q, status, code, msg)
	}
	translating := time.Now()
	out, err := c.body(lease.Model.ServedName())
	if err != nil {
		fail(http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	body, err := json.Marshal(out)
	if err == nil && preset != nil {
		g.hold(q, body)
		body, err = preset.apply(body, lease.Model.ServedName())
	}
	g.hold(q, body)
	if err != nil {
		fail(http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	q.span.Translated(q.r.URL.Path+" → "+c.path, translating)
	h := q.engineHeader(http.Header{"Content-Type": {"application/json"}}, lease.Model.Name, "")
	began := time.Now()
	resp, err := g.up.send(engineAddr(lease.BaseURL), q.r, http.MethodPost, c.path, h, body)
	if err != nil {
		if !q.gone() {
			fail(http.StatusBadGateway, "upstream_error", g.deadMessage(lease, err))
		}
		return
	}
	defer resp.Body.Close()
	if !q.early {
		q.Header().Set("X-Gantry-Served-By", lease.Model.Name)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		msg := fmt.Sprintf("%s: %s", lease.Model.Name, translate.EngineError(b))
		if resp.StatusCode == http.StatusNotFound && c.notServed != "" {
			msg = lease.Model.Name + " " + c.notServed
		}
		fail(resp.StatusCode, "engine_error", msg)
		return
	}
	if !c.stream {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		if err != nil {
			c.errorShape(q, http.StatusBadGateway, "upstream_error", g.deadMessage(lease, err))
			return
		}
		ans, err := c.answer(b, c.model, time.Since(began))
		if err != nil {
			c.errorShape(q, http.StatusBadGateway, "upstream_error", fmt.Sprintf("%s answered what gantry cannot translate: %v", lease.Model.Name, err))
			return
		}
		apierr.WriteJSON(q, http.StatusOK, json.RawMessage(ans))
		return
	}
	if !q.early {
		q.Header().Set("Content-Type", c.streamType)
		q.Header().Set("Cache-Control", "no-cache")
		q.WriteHeader(http.StatusOK)
	}
	tr := c.newStream(c.model)
	g.pumpStream(q, resp.Body, tr, lease)
	if u, ok := tr.(translate.UsageCounter); ok {
		if x := q.act(); x != nil {
			if p, c, k := u.Usage(); p+c > 0 {
				x.tokens = &activity.Tokens{Prompt: p, Completion: c, Cached: k}
			}
		}
	}
}

// pumpStream feeds the engine's server-sent chat chunks to a translator and
// writes what it makes, flushing after every engine event.
func (g *Gateway) pumpStream(q *request, body io.Reader, tr translate.Stream, lease *sched.Lease) {
	q.streaming = true // the translator counts the tokens: no tail to keep
	rc := http.NewResponseController(q)
	br := bufio.NewReaderSize(body, 4<<10) // a longer line is put together below
	var line []byte
	write := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		if _, err := q.Write(b); err != nil {
			return false
		}
		q.events++
		return rc.Flush() == nil
	}
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > 16<<20 {
				write(tr.Fail(lease.Model.Name + " sent an event over 16 MiB"))
				return
			}
			continue
		}
		if err != nil {
			if q.gone() {
				return
			}
			if err == io.EOF {
				write(tr.End())
				return
			}
			write(tr.Fail(g.deadMessage(lease, err)))
			return
		}
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), dataPrefix)
		line = line[:0]
		if !ok {
			continue // comments, event names, blank lines between events
		}
		data = bytes.TrimSpace(data)
		if bytes.Equal(data, []byte("[DONE]")) {
			write(tr.End())
			return
		}
		if bytes.HasPrefix(data, []byte(`{"error"`)) {
			var e struct {
				Error json.RawMessage `json:"error"`
			}
			json.Unmarshal(data, &e) //nolint:errcheck // best effort: the message is what matters
			write(tr.Fail(translate.EngineError(data)))
			return
		}
		out, err := tr.Chunk(data)
		if err != nil {
			write(tr.Fail(fmt.Sprintf("%s sent an event gantry cannot read: %v", lease.Model.Name, err)))
			return
		}
		if !write(out) {
			return
		}
	}
}

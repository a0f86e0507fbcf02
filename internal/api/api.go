// Package api is gantry's admin API: JSON status, start/stop, logs and an
// event stream, all under /api, plus /healthz. Every error is written in
// the OpenAI shape {"error":{"message","type","code"}} by one function.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/check"
	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
)

// Server serves the admin API of one scheduler.
type Server struct {
	sched    *sched.Scheduler
	logger   *slog.Logger
	events   *Hub
	activity *activity.Store // nil: the activity log is off
	peers    Peers           // nil: no peers
	// downloads runs the downloads of POST /api/models/get (nil: off).
	downloads *fetch.Manager
}

// Peers is what the admin API shows of the other boxes (*peers.Set).
type Peers interface {
	// Status is every peer's state and its models at the last check.
	Status() []status.PeerStatus
}

// SetPeers makes /api/status?peers=1 show the peers. Call before serving.
func (s *Server) SetPeers(p Peers) { s.peers = p }

// New returns the admin API for s; events may be nil.
func New(s *sched.Scheduler, events *Hub, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if events == nil {
		events = NewHub()
	}
	// Engine output is shown as the logs keep it: with secrets already
	// replaced (supervise.Log redacts each line as it reads it).
	return &Server{sched: s, logger: logger, events: events}
}

// Register adds the admin routes to mux, each wrapped by wrap (auth);
// /healthz stays open.
func (s *Server) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	mux.HandleFunc("GET /healthz", s.healthz)
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, wrap(f)) }
	h("GET /api/status", s.status)
	h("GET /api/models", s.status)
	h("POST /api/models/{name}/start", s.start)
	h("POST /api/models/{name}/stop", s.stop)
	h("POST /api/models/{name}/rank", s.startRank)
	h("GET /api/models/{name}/rank", s.rankStatus)
	h("POST /api/slots/{slot}/switch", s.switchSlot)
	h("GET /api/profile", s.getProfile)
	h("POST /api/profile", s.setProfile)
	h("GET /api/logs/{name}", s.logs)
	h("GET /api/inventory", s.inventory)
	h("POST /api/check", s.check)
	h("GET /api/events", s.eventStream)
	h("GET /api/activity", s.activityLog)
	h("GET /api/usage", s.usage)
	h("POST /api/pull", s.pull)
	h("GET /api/models/fit", s.fit)
	h("POST /api/models/get", s.get)
	h("GET /api/downloads", s.downloadList)
	h("GET /api/hub/{rest...}", s.hubServe) // HEAD too
}

// readJSON decodes a small JSON request body into v (a pointer to a
// struct), answering 400 itself. It is strict where encoding/json is not:
// keys must be exactly v's (encoding/json matches any case), each at most
// once, and nothing may follow the object.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil {
		err = strictJSON(b, v)
	}
	if err != nil {
		apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "the body is not the expected JSON: "+err.Error())
		return false
	}
	return true
}

// strictJSON decodes one JSON object b into the struct v: exact keys,
// no duplicate, no trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("want a JSON object")
	}
	known := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := tok.(string)
		switch {
		case !known[k]:
			return fmt.Errorf("unknown key %s (keys are case-sensitive)", sched.Quote(k))
		case seen[k]:
			return fmt.Errorf("key %s given twice", sched.Quote(k))
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return json.Unmarshal(b, v)
}

// switchSlot makes {"model": M} the running member of the slot and answers
// when it is ready (the old member is drained first).
func (s *Server) switchSlot(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Model == "" {
		apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "model_missing", `want {"model": "<member of the slot>"}`)
		return
	}
	if err := s.sched.Switch(context.WithoutCancel(r.Context()), r.PathValue("slot"), req.Model); err != nil {
		apierr.WriteErr(w, err)
		return
	}
	// The model may be gone by now (a reload removed it): answer what is.
	name := req.Model
	if m := s.sched.Config().Resolve(req.Model); m != nil {
		name = m.Name
	}
	ms, _ := s.modelStatus(name)
	apierr.WriteJSON(w, http.StatusOK, ms)
}

// inventory lists the models on disk, configured and served, with their
// sizes, estimates and problems.
func (s *Server) inventory(w http.ResponseWriter, r *http.Request) {
	st := s.sched.Status()
	served := map[string]string{}
	for _, m := range st.Models {
		served[m.Name] = string(m.State)
	}
	rows, err := plan.Inventory(s.sched.Config(), s.sched.Box(), served)
	if err != nil {
		apierr.Write(w, http.StatusInternalServerError, "server_error", "inventory", err.Error())
		return
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"models": rows})
}

// check runs the sanity checks (?all=1 starts on-demand models too); the
// answer is 200 with ok=false when something failed.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	apierr.WriteJSON(w, http.StatusOK, check.Run(r.Context(), s.sched, check.Options{All: isTrue(r.URL.Query().Get("all"))}))
}

// profileInfo is GET /api/profile.
type profileInfo struct {
	Active   string              `json:"active"`
	Profiles map[string][]string `json:"profiles"`
}

func (s *Server) profileInfo() profileInfo {
	pi := profileInfo{Active: s.sched.Profile(), Profiles: map[string][]string{}}
	for n, p := range s.sched.Config().Profiles {
		pi.Profiles[n] = append([]string{}, p.AlwaysOn...)
	}
	return pi
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) {
	apierr.WriteJSON(w, http.StatusOK, s.profileInfo())
}

// setProfile activates {"profile": NAME} ("" for none).
func (s *Server) setProfile(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Profile string `json:"profile"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if err := s.sched.SetProfile(context.WithoutCancel(r.Context()), req.Profile); err != nil {
		apierr.WriteErr(w, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, s.profileInfo())
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	apierr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// status answers GET /api/status; with ?peers=1 the peers' models too.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.sched.Status()
	if s.peers != nil && r.URL.Query().Get("peers") == "1" {
		st.Peers = s.peers.Status()
	}
	apierr.WriteJSON(w, http.StatusOK, st)
}

func (s *Server) modelStatus(name string) (status.ModelStatus, bool) {
	for _, m := range s.sched.Status().Models {
		if m.Name == name {
			return m, true
		}
	}
	return status.ModelStatus{}, false
}

// start starts a model. Without ?wait it answers 202 at once (poll
// /api/status for progress); with ?wait=1 it answers when the model is
// ready (200) or has failed (503 with the reason).
func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	p, err := s.sched.Process(r.PathValue("name"))
	if err != nil {
		apierr.WriteErr(w, err)
		return
	}
	name := p.Model().Name
	if !isTrue(r.URL.Query().Get("wait")) {
		if err := s.sched.Begin(name); err != nil {
			apierr.WriteErr(w, err)
			return
		}
		ms, _ := s.modelStatus(name)
		apierr.WriteJSON(w, http.StatusAccepted, ms)
		return
	}
	if err := s.sched.Start(r.Context(), name); err != nil {
		apierr.WriteErr(w, err)
		return
	}
	ms, _ := s.modelStatus(name)
	apierr.WriteJSON(w, http.StatusOK, ms)
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	p, err := s.sched.Process(r.PathValue("name"))
	if err != nil {
		apierr.WriteErr(w, err)
		return
	}
	// The stop finishes even if the client goes away: a half-stopped engine
	// helps nobody.
	if err := s.sched.Stop(context.WithoutCancel(r.Context()), p.Model().Name); err != nil {
		apierr.WriteErr(w, err)
		return
	}
	ms, _ := s.modelStatus(p.Model().Name)
	apierr.WriteJSON(w, http.StatusOK, ms)
}

func isTrue(s string) bool {
	b, err := strconv.ParseBool(s)
	return err == nil && b
}

// logs returns the last lines of a model's engine output (?tail=N, default
// 100) as text, or with ?follow=1 as an SSE stream of lines.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	p, err := s.sched.Process(r.PathValue("name"))
	if err != nil {
		apierr.WriteErr(w, err)
		return
	}
	tail := 100
	if v := r.URL.Query().Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "bad_tail", fmt.Sprintf("tail=%q: want a number ≥ 0", v))
			return
		}
		tail = n
	}
	if !isTrue(r.URL.Query().Get("follow")) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, l := range p.Log().Tail(tail) {
			fmt.Fprintln(w, l)
		}
		return
	}
	lines, ch, stop := p.Log().Follow(tail)
	defer stop()
	sse := newSSE(w)
	for _, l := range lines {
		sse.send("line", l)
	}
	sse.flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case l := <-ch:
			sse.send("line", l)
			sse.flush()
		case <-keep.C:
			sse.comment("keep-alive")
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) {
	ch, stop := s.events.Subscribe()
	defer stop()
	follow(w, r, "gantry events", ch, func(ev status.Event) (string, bool) { return string(ev.Kind), true })
}

// follow streams what ch carries as server-sent events — each JSON, named
// (or skipped) by name — with a keep-alive comment every 15 s, until the
// client goes or ch closes.
func follow[T any](w http.ResponseWriter, r *http.Request, greeting string, ch <-chan T, name func(T) (string, bool)) {
	sse := newSSE(w)
	sse.comment(greeting)
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				return // gantry stops
			}
			event, send := name(v)
			if !send {
				continue
			}
			b, _ := json.Marshal(v)
			sse.send(event, string(b))
			sse.flush()
		case <-keep.C:
			sse.comment("keep-alive")
		case <-r.Context().Done():
			return
		}
	}
}

// sseWriter writes server-sent events.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newSSE(w http.ResponseWriter) *sseWriter {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: http.NewResponseController(w)}
	s.flush()
	return s
}

func (s *sseWriter) send(event, data string) {
	if event != "" {
		fmt.Fprintf(s.w, "event: %s\n", event)
	}
	fmt.Fprintf(s.w, "data: %s\n\n", data)
}

func (s *sseWriter) comment(c string) {
	fmt.Fprintf(s.w, ": %s\n\n", c)
	s.flush()
}

func (s *sseWriter) flush() { s.rc.Flush() } //nolint:errcheck // client gone: the request ctx ends

// Hub fans events out to subscribers; a slow subscriber loses events
// rather than stalling gantry.
type Hub struct {
	mu   sync.Mutex
	subs map[chan status.Event]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[chan status.Event]struct{}{}} }

// Publish sends ev to every subscriber that has room.
func (h *Hub) Publish(ev status.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Subscribers counts who listens (publishing to nobody is skipped).
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Subscribe returns a channel of events and a function to unsubscribe.
func (h *Hub) Subscribe() (<-chan status.Event, func()) {
	ch := make(chan status.Event, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

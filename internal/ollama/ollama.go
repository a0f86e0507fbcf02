// Package ollama runs the models of engine ollama on one shared `ollama
// serve`: gantry, not Ollama, decides what is loaded. A model is loaded
// with /api/generate and keep_alive -1, is ready when /api/ps lists it,
// and is unloaded with keep_alive 0; a path: to a GGUF file is registered
// first through the API (the blob uploaded, then /api/create), which works
// for a server in a container too. The server starts with the first model and
// stops when the last one is unloaded; if it dies, its models fail and the
// next request brings them back.
package ollama

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/progress"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// Server is the one `ollama serve` that gantry's Ollama models share.
type Server struct {
	proc   *supervise.Process
	launch engine.Launch
	client *http.Client
	logger *slog.Logger

	mu     sync.Mutex
	users  map[*Model]bool // models loaded or loading
	models []*Model

	adoptMu sync.Mutex // one adoption for all the server's models
	adopted bool
	tried   int // models that tried to adopt
}

// NewServer prepares the shared server from the launch of one of its
// models (they all share the port and environment); it starts nothing.
func NewServer(m *config.Model, l engine.Launch, logPath string, o supervise.Options) (*Server, error) {
	srv := &Server{launch: l, users: map[*Model]bool{}, logger: o.Logger,
		client: &http.Client{Timeout: 10 * time.Minute}}
	if srv.logger == nil {
		srv.logger = slog.New(slog.DiscardHandler)
	}
	sm := *m
	sm.Name = "ollama"
	o.Key = "ollama serve" // not a model name: a model may be called ollama
	o.Restart = false      // a dead server fails its models; the next request restarts it
	// The server's own state changes are not a model's: they fail the
	// loaded models, whose events the scheduler sees.
	o.OnEvent = func(ev supervise.Event) {
		if ev.To == status.Failed || ev.To == status.Stopped {
			srv.serverGone(ev)
		}
	}
	p, err := supervise.New(&sm, l, logPath, o)
	if err != nil {
		return nil, err
	}
	srv.proc = p
	return srv, nil
}

// serverGone fails every model that was loaded when the server went away.
func (s *Server) serverGone(ev supervise.Event) {
	s.mu.Lock()
	models := append([]*Model(nil), s.models...)
	s.mu.Unlock()
	for _, m := range models {
		m.serverGone(ev)
	}
}

func (s *Server) base() string { return s.launch.BaseURL }

// adopt takes over the `ollama serve` a previous gantry started, once for
// all models; it then unloads what that server holds that no configured
// model names (it would hold memory outside the budget).
func (s *Server) adopt(ctx context.Context) error {
	s.adoptMu.Lock()
	defer s.adoptMu.Unlock()
	if s.adopted {
		return nil
	}
	if s.proc.State() != status.Stopped {
		return fmt.Errorf("ollama serve is %s", s.proc.State())
	}
	if err := s.proc.Adopt(ctx); err != nil {
		return err
	}
	s.adopted = true
	ps, err := s.loaded(ctx)
	if err != nil {
		return nil // the models' own checks say what is loaded
	}
	s.mu.Lock()
	var names []string
	for _, m := range s.models {
		names = append(names, m.Name())
	}
	s.mu.Unlock()
	for _, e := range ps {
		if !slices.ContainsFunc(names, func(n string) bool { return sameModel(e.Name, n) || sameModel(e.Model, n) }) {
			s.proc.Log().Mark("unloading %s: no configured model serves it", e.Name)
			s.post(ctx, "/api/generate", map[string]any{"model": e.Name, "keep_alive": 0}, nil) //nolint:errcheck // best effort
		}
	}
	return nil
}

// adoptTried counts one model's adoption attempt; when every model has
// tried and none was taken, an adopted server serves nobody: stop it.
func (s *Server) adoptTried(ctx context.Context) {
	s.adoptMu.Lock()
	s.tried++
	tried, adopted := s.tried, s.adopted
	s.adoptMu.Unlock()
	s.mu.Lock()
	all, idle := tried == len(s.models), len(s.users) == 0
	s.mu.Unlock()
	if adopted && all && idle {
		s.proc.Stop(ctx) //nolint:errcheck // ends with the group gone
	}
}

// acquire starts the server if needed and counts m as a user.
func (s *Server) acquire(ctx context.Context, m *Model) error {
	s.mu.Lock()
	s.users[m] = true
	s.mu.Unlock()
	return s.proc.Start(ctx)
}

// release forgets m; the last one out stops the server.
func (s *Server) release(ctx context.Context, m *Model) {
	s.mu.Lock()
	delete(s.users, m)
	last := len(s.users) == 0
	s.mu.Unlock()
	if last {
		s.proc.Stop(ctx) //nolint:errcheck // stop ends with the group gone
	}
}

// post sends JSON to the server and decodes the answer into out (if set).
func (s *Server) post(ctx context.Context, path string, in, out any) error {
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base()+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return s.do(req, out)
}

func (s *Server) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base()+path, nil)
	if err != nil {
		return err
	}
	return s.do(req, out)
}

func (s *Server) do(req *http.Request, out any) error {
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("ollama %s: %s", req.URL.Path, e.Error)
		}
		return fmt.Errorf("ollama %s: %s %.200s", req.URL.Path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// psEntry is one model of /api/ps.
type psEntry struct {
	Name  string `json:"name"`
	Model string `json:"model"`
	Size  int64  `json:"size"`
}

// loaded returns what /api/ps lists.
func (s *Server) loaded(ctx context.Context) ([]psEntry, error) {
	var ps struct {
		Models []psEntry `json:"models"`
	}
	err := s.get(ctx, "/api/ps", &ps)
	return ps.Models, err
}

// has reports whether the server knows a model (in /api/tags).
func (s *Server) has(ctx context.Context, name string) (bool, error) {
	var tags struct {
		Models []struct {
			Name string `json:"name"`
		} `json:"models"`
	}
	if err := s.get(ctx, "/api/tags", &tags); err != nil {
		return false, err
	}
	for _, t := range tags.Models {
		if sameModel(t.Name, name) {
			return true, nil
		}
	}
	return false, nil
}

// sameModel compares Ollama names, where "tiny" means "tiny:latest".
func sameModel(a, b string) bool {
	norm := func(s string) string {
		if !strings.Contains(s, ":") {
			return s + ":latest"
		}
		return s
	}
	return norm(a) == norm(b)
}

// Model is one gantry model served by the shared Ollama server. It
// implements the scheduler's Runner.
type Model struct {
	m      *config.Model
	srv    *Server
	path   string // GGUF to register, "" for a tag already present
	numCtx int64  // context to load with, 0 = the server's default
	onEv   func(supervise.Event)
	onProg func(model string, step progress.Step)
	before func(ctx context.Context, m *config.Model, phase func(string)) string
	logger *slog.Logger
	// prog follows the load in the server's log (Ollama loads one model
	// at a time, so the runner's lines during our load are ours).
	prog *progress.Tracker

	mu       sync.Mutex
	state    status.State
	reason   string
	starts   int
	started  time.Time
	readyAt  time.Time
	measured int64
	adopted  bool
	attempt  supervise.Attempts // the load under way, joined by every Start
	restart  bool
}

// NewModel returns the runner of model m (path: the GGUF to register, ""
// when m.Model names a tag Ollama already has; numCtx: the planned context).
func NewModel(m *config.Model, srv *Server, path string, numCtx int64, o supervise.Options) *Model {
	md := &Model{m: m, srv: srv, path: path, numCtx: numCtx, onEv: o.OnEvent, onProg: o.OnProgress, before: o.BeforeSpawn, logger: o.Logger,
		state: status.Stopped, restart: o.Restart, prog: progress.NewTracker(time.Second, engine.LoadProgress())}
	if md.logger == nil {
		md.logger = slog.New(slog.DiscardHandler)
	}
	srv.mu.Lock()
	srv.models = append(srv.models, md)
	srv.mu.Unlock()
	return md
}

// Name is the model's name inside Ollama.
func (md *Model) Name() string { return md.m.ServedName() }

func (md *Model) set(to status.State, reason string) {
	md.mu.Lock()
	from := md.state
	md.state, md.reason = to, reason
	md.mu.Unlock()
	if from != to && md.onEv != nil {
		md.onEv(supervise.Event{Model: md.m.Name, From: from, To: to, Reason: reason, Time: time.Now()})
	}
}

// Start loads the model (starting the server and registering the GGUF
// first when needed) and waits until /api/ps lists it.
func (md *Model) Start(ctx context.Context) error {
	md.mu.Lock()
	if done, begin, err := md.attempt.Join(md.state, md.m.Name); !begin {
		md.mu.Unlock()
		if done == nil || err != nil {
			return err
		}
		return md.attempt.Wait(ctx, &md.mu, done)
	}
	md.starts++
	md.started = time.Now()
	md.adopted = false
	done := md.attempt.Begin()
	md.mu.Unlock()
	md.set(status.Starting, fmt.Sprintf("start %d", md.starts))
	go md.load(done)
	return md.attempt.Wait(ctx, &md.mu, done)
}

func (md *Model) load(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), md.m.StartTimeout.D())
	defer cancel()
	err := md.loadSteps(ctx)
	md.mu.Lock()
	if err == nil {
		md.readyAt = time.Now()
	}
	md.attempt.End(done, err)
	md.mu.Unlock()
	if err != nil {
		md.srv.release(context.Background(), md)
		md.set(status.Failed, err.Error())
		return
	}
	md.set(status.Ready, fmt.Sprintf("loaded in %s", time.Since(md.started).Round(time.Millisecond)))
}

func (md *Model) loadSteps(ctx context.Context) error {
	lg := md.srv.proc.Log()
	if err := md.srv.acquire(ctx, md); err != nil {
		return fmt.Errorf("ollama serve did not start: %w", err)
	}
	name := md.Name()
	if md.path != "" {
		ok, err := md.srv.has(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			lg.Mark("registering %s from %s (uploaded to ollama, /api/create)", name, md.path)
			if err := md.create(ctx, name); err != nil {
				return err
			}
		}
	}
	if md.before != nil {
		phase := func(name string) { md.prog.Set(progress.Step{Phase: name, Fraction: -1}) }
		if note := md.before(ctx, md.m, phase); note != "" {
			lg.Mark("%s", note)
		}
	}
	lg.Mark("loading %s", name)
	stop := md.followLoad(lg)
	defer stop()
	load := map[string]any{"model": name, "keep_alive": -1}
	if md.numCtx > 0 {
		load["options"] = map[string]int64{"num_ctx": md.numCtx}
	}
	if err := md.srv.post(ctx, "/api/generate", load, nil); err != nil {
		return fmt.Errorf("load %s: %w", name, err)
	}
	for {
		ps, err := md.srv.loaded(ctx)
		if err != nil {
			return err
		}
		for _, e := range ps {
			if sameModel(e.Name, name) || sameModel(e.Model, name) {
				md.mu.Lock()
				md.measured = e.Size
				md.mu.Unlock()
				lg.Mark("%s loaded: %d bytes (/api/ps)", name, e.Size)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not in /api/ps after start_timeout %s", name, md.m.StartTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// followLoad feeds the server's output to the model's progress and
// reports each step until stop is called.
func (md *Model) followLoad(lg *supervise.Log) (stop func()) {
	md.prog.Reset(time.Now())
	remove := lg.AddHook(md.prog.Feed)
	quit := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				if st, ok := md.prog.Take(now); ok && md.onProg != nil {
					md.onProg(md.m.Name, st)
				}
			}
		}
	}()
	return func() { remove(); close(quit) }
}

// Stop unloads the model (keep_alive 0) and, when it was the last one,
// stops the server.
func (md *Model) Stop(ctx context.Context) error {
	md.mu.Lock()
	st := md.state
	if st == status.Stopped || st == status.Stopping {
		md.mu.Unlock()
		return nil
	}
	done := md.attempt.Current()
	md.mu.Unlock()
	if st == status.Starting && done != nil {
		select { // let the load end first; unloading a half-loaded model races Ollama
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	md.set(status.Stopping, "stop requested")
	if md.srv.proc.State() == status.Ready {
		uctx, cancel := context.WithTimeout(ctx, md.m.StopTimeout.D())
		err := md.srv.post(uctx, "/api/generate", map[string]any{"model": md.Name(), "keep_alive": 0}, nil)
		if err != nil {
			md.logger.Warn("unload failed", "model", md.m.Name, "err", err)
		}
		for err == nil {
			ps, perr := md.srv.loaded(uctx)
			if perr != nil || !listed(ps, md.Name()) {
				break
			}
			select {
			case <-uctx.Done():
				err = uctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		cancel()
	}
	md.srv.release(ctx, md)
	md.mu.Lock()
	md.measured = 0
	md.mu.Unlock()
	md.set(status.Stopped, "unloaded")
	return nil
}

func listed(ps []psEntry, name string) bool {
	for _, e := range ps {
		if sameModel(e.Name, name) || sameModel(e.Model, name) {
			return true
		}
	}
	return false
}

// serverGone marks a loaded model failed when its server died.
func (md *Model) serverGone(ev supervise.Event) {
	md.mu.Lock()
	st, restart := md.state, md.restart
	md.mu.Unlock()
	if st != status.Ready {
		return
	}
	md.srv.mu.Lock()
	delete(md.srv.users, md)
	md.srv.mu.Unlock()
	md.set(status.Failed, "ollama serve went away: "+ev.Reason)
	if restart {
		go md.Start(context.Background()) //nolint:errcheck // always-on: bring it back
	}
}

// Adopt takes over this model from the `ollama serve` a previous gantry
// left running: when that server is ours (found in the registry, same
// launch, ready) and /api/ps lists the model, the server is adopted once
// for all its models and this one is ready without a reload.
func (md *Model) Adopt(ctx context.Context) error {
	defer md.srv.adoptTried(ctx)
	if err := md.srv.adopt(ctx); err != nil {
		return err
	}
	ps, err := md.srv.loaded(ctx)
	if err != nil {
		return err
	}
	var size int64
	found := false
	for _, e := range ps {
		if sameModel(e.Name, md.Name()) || sameModel(e.Model, md.Name()) {
			size, found = e.Size, true
		}
	}
	if !found {
		return fmt.Errorf("%s is not loaded in the adopted ollama serve", md.Name())
	}
	md.mu.Lock()
	if md.state != status.Stopped {
		md.mu.Unlock()
		return fmt.Errorf("%s is %s", md.m.Name, md.state)
	}
	now := time.Now()
	md.started, md.readyAt, md.measured, md.adopted = now, now, size, true
	md.mu.Unlock()
	md.srv.mu.Lock()
	md.srv.users[md] = true
	md.srv.mu.Unlock()
	md.srv.proc.Log().Mark("adopted %s, loaded in the ollama serve a previous gantry started", md.Name())
	md.set(status.Ready, "adopted: still loaded in ollama serve")
	return nil
}

// Close unloads the model and takes it off the server (a config reload
// retires it; a new Model takes its place).
func (md *Model) Close(ctx context.Context) error {
	err := md.Stop(ctx)
	md.srv.mu.Lock()
	md.srv.models = slices.DeleteFunc(md.srv.models, func(o *Model) bool { return o == md })
	md.srv.mu.Unlock()
	return err
}

// Status reports the model's state with the server's pid and log line.
func (md *Model) Status() supervise.Status {
	ps := md.srv.proc.Status()
	md.mu.Lock()
	defer md.mu.Unlock()
	st := supervise.Status{State: md.state, Reason: md.reason, Starts: md.starts, StartedAt: md.started,
		ReadyAt: md.readyAt, LastLine: ps.LastLine, Adopted: md.adopted && md.state == status.Ready}
	if md.state == status.Ready || md.state == status.Starting {
		st.PID = ps.PID
	}
	if md.state == status.Starting {
		st.Phase, st.Detail = ps.Phase, ps.Detail
		if ps.State == status.Ready {
			st.Phase = "loading model"
		}
		step, _ := md.prog.Current()
		st.Step = &step
	}
	return st
}

// State is the model's state.
func (md *Model) State() status.State {
	md.mu.Lock()
	defer md.mu.Unlock()
	return md.state
}

// MeasuredMemory is what /api/ps says the loaded model takes, 0 unknown.
func (md *Model) MeasuredMemory() int64 {
	md.mu.Lock()
	defer md.mu.Unlock()
	return md.measured
}

// SetRestart sets whether a model whose server died is loaded again.
func (md *Model) SetRestart(on bool) {
	md.mu.Lock()
	md.restart = on
	md.mu.Unlock()
}

// Model is the gantry model.
func (md *Model) Model() *config.Model { return md.m }

// Launch is the shared server's launch.
func (md *Model) Launch() engine.Launch { return md.srv.launch }

// Log is the shared server's log.
func (md *Model) Log() *supervise.Log { return md.srv.proc.Log() }

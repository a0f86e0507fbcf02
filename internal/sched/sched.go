// Package sched decides which engines run. It owns one supervised engine per
// configured model and is the only place that starts and stops them: on
// demand when a request arrives, within the memory budget (evicting idle
// on-demand models, least recently used first), one member at a time on a
// slot (draining before a switch), always-on models at boot and after a
// profile switch, and idle models after their idle_timeout.
package sched

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/diagnose"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/ollama"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/supervise"
)

// Runner is what the scheduler needs of a supervised engine;
// *supervise.Process is the real one.
type Runner interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Close(ctx context.Context) error
	Status() supervise.Status
	State() supervise.State
	SetRestart(on bool)
	Model() *config.Model
	Launch() engine.Launch
	Log() *supervise.Log
}

// NewRunner builds a Runner; supervise.New wrapped is the default.
type NewRunner func(m *config.Model, l engine.Launch, logPath string, o supervise.Options) (Runner, error)

func newProcess(m *config.Model, l engine.Launch, logPath string, o supervise.Options) (Runner, error) {
	return supervise.New(m, l, logPath, o)
}

// Errors of Acquire and Start; the gateway maps them to HTTP statuses.
var (
	ErrUnknownModel       = errors.New("unknown model")
	ErrInsufficientMemory = errors.New("insufficient memory")
	ErrQueueFull          = errors.New("too many requests waiting")
	ErrSlotSwitching      = errors.New("slot is switching")
	ErrStartFailed        = errors.New("model failed to start")
	ErrClosed             = errors.New("gantry is shutting down")
)

// retryFailedAfter is how long a failed on-demand model with a fallback is
// passed over before a request tries to start it again.
const retryFailedAfter = 30 * time.Second

// Scheduler runs the models of one config.
type Scheduler struct {
	conf   atomic.Pointer[config.Config] // swapped by Reload
	logger *slog.Logger
	budget int64 // bytes engines may reserve in all
	total  int64 // the memory the budget is taken from
	state  string

	mu        sync.Mutex
	models    map[string]*entry
	changed   chan struct{}     // closed and replaced on every change waiters care about
	switching map[string]*entry // slot → the member it is switching to
	profile   string
	plans     map[string]*plan.Model
	gpu       gpu.Facts
	procs     func() []gpu.Proc // GPU processes now, for diagnoses
	ollama    *ollama.Server    // shared by the ollama models, nil when none
	gpuNow    func() gpu.Facts  // live telemetry for Status, nil: the start facts
	opts      Options
	closed    bool
	events    func(Event)
}

// entry is one model's runtime record; guarded by Scheduler.mu.
type entry struct {
	m        *config.Model
	proc     Runner
	state    supervise.State // last state the engine reported
	readyAt  time.Time
	failedAt time.Time
	reason   string
	inflight int
	queued   int
	lastUsed time.Time
	holds    bool // counts toward reserved memory: admitted and not yet gone
	evicting bool // a stop (eviction, idle, explicit) is under way
	draining bool // its slot is switching to another member
	alwaysOn bool // by mode or by the active profile
	idle     *time.Timer
	memory   int64
	// memorySource overrides the plan's when the engine measured it.
	memorySource string
	baseURL      string
	plan         *plan.Model
	launch       engine.Launch
	// diagnosis is the known cause of the last failure (or a warning
	// seen while loading), "" when none.
	diagnosis string
}

// Event is something the scheduler did or saw, for /api/events and logs.
type Event struct {
	Kind   string `json:"kind"` // state, eviction, switch, profile, fallback
	Model  string `json:"model,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Diagnosis is the known cause and fix of a failure, when found.
	Diagnosis string `json:"diagnosis,omitempty"`
	// LoadSeconds is, on a change to ready, how long the engine took.
	LoadSeconds float64 `json:"load_seconds,omitempty"`
	// Request events (for the dashboard's charts): status code, time to
	// the first byte, total time, and streamed chunks (≈ tokens).
	Code       int       `json:"code,omitempty"`
	TTFBMS     float64   `json:"ttfb_ms,omitempty"`
	DurationMS float64   `json:"duration_ms,omitempty"`
	Chunks     int       `json:"chunks,omitempty"`
	Time       time.Time `json:"time"`
}

// Options for New.
type Options struct {
	Logger *slog.Logger
	// Self is the gantry executable (for `gantry sim` models).
	Self string
	// OnEvent receives every event.
	OnEvent func(Event)
	// Supervise tunes the processes (backoff, probes); Restart is set per
	// model from its mode.
	Supervise supervise.Options
	// MemoryTotal overrides memory.total: auto (tests).
	MemoryTotal int64
	// GPU replaces asking nvidia-smi (tests).
	GPU *gpu.Facts
	// Inspect replaces reading model files (tests).
	Inspect plan.Inspector
	// NewRunner replaces the real process supervisor (unit tests).
	NewRunner NewRunner
	// StateFile is where the active profile is kept across restarts;
	// default <root>/state/gantry.json.
	StateFile string
}

// New prepares a scheduler for cfg; it starts nothing (see Boot).
func New(cfg *config.Config, o Options) (*Scheduler, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Self == "" {
		o.Self, _ = os.Executable()
	}
	facts := o.GPU
	if facts == nil {
		f := gpu.Detect(context.Background(), gpu.NvidiaSMI, gpu.SystemMemory)
		facts = &f
	}
	total := int64(cfg.Memory.Total)
	if o.MemoryTotal > 0 {
		total = o.MemoryTotal
	}
	if total <= 0 {
		total = facts.TotalBytes
	}
	if total <= 0 {
		return nil, fmt.Errorf("memory.total is auto but the machine's memory is unknown (%s): set memory.total", facts.Source)
	}
	if o.StateFile == "" {
		o.StateFile = StatePath(cfg)
	}
	s := &Scheduler{logger: o.Logger, total: total, budget: total - int64(cfg.Memory.Reserve),
		models: map[string]*entry{}, events: o.OnEvent, changed: make(chan struct{}),
		switching: map[string]*entry{}, state: o.StateFile, gpu: *facts, opts: o}
	s.conf.Store(cfg)
	if o.GPU == nil && len(facts.GPUs) > 0 {
		s.procs = func() []gpu.Proc {
			f := gpu.Detect(context.Background(), gpu.NvidiaSMI, gpu.SystemMemory)
			return f.Procs
		}
	}
	if st, err := loadState(o.StateFile); err == nil && st.Profile != "" {
		if _, ok := cfg.Profiles[st.Profile]; ok {
			s.profile = st.Profile
		} else {
			s.logger.Warn("the saved profile is no longer configured; none is active", "profile", st.Profile)
		}
	}
	s.plans = plan.Make(cfg, plan.Box{Facts: *facts, Total: total, Budget: s.budget}, o.Inspect)
	if probs := plan.Problems(cfg, s.plans); probs.Errors() > 0 {
		var missing config.Problems
		for _, p := range probs {
			if !p.Warning && strings.Contains(p.Msg, "memory: is required") {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return nil, missing
		}
	}
	for _, name := range cfg.ModelNames() {
		e, err := s.newEntry(cfg, cfg.Models[name], s.plans[name])
		if err != nil {
			return nil, err
		}
		s.models[name] = e
	}
	s.adopt(cfg)
	return s, nil
}

// adopter is a runner that can take over an engine a previous gantry
// started.
type adopter interface{ Adopt(pid int) error }

// adopt looks at the engines the previous gantry recorded: one still
// running with the same argv and answering as ready is adopted (its load
// is not thrown away); any other still-running one of ours is stopped, so
// nothing is orphaned and no engine runs twice.
func (s *Scheduler) adopt(cfg *config.Config) {
	path := enginesFile(cfg)
	for name, rec := range loadEngines(path) {
		if rec.PID <= 0 || !slices.Equal(supervise.Cmdline(rec.PID), rec.Argv) {
			continue // gone, or the pid now belongs to something else
		}
		e := s.models[name]
		var a adopter
		if e != nil {
			a, _ = e.proc.(adopter)
		}
		if a != nil && slices.Equal(e.launch.Argv, rec.Argv) {
			ad, _ := engine.For(e.m.Engine)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			rd := ad.Probe(ctx, http.DefaultClient, e.baseURL, e.m)
			cancel()
			if rd.Ready && a.Adopt(rec.PID) == nil {
				s.mu.Lock()
				e.holds = true
				s.mu.Unlock()
				s.logger.Info("adopted a running engine", "model", name, "pid", rec.PID)
				continue
			}
		}
		s.logger.Warn("stopping an engine a previous gantry left behind", "model", name, "pid", rec.PID)
		supervise.KillGroup(rec.PID, 5*time.Second)
	}
	s.saveEngines()
}

// saveEngines records the engines now running, for the next gantry.
func (s *Scheduler) saveEngines() {
	s.mu.Lock()
	recs := map[string]engineRecord{}
	for name, e := range s.models {
		if len(e.launch.Argv) == 0 {
			continue
		}
		// A container is recorded by its `docker run` client, which keeps
		// running (and attached) when gantry dies, like a native engine.
		st := e.proc.Status()
		if st.PID > 0 && (st.State == supervise.Ready || st.State == supervise.Starting) {
			recs[name] = engineRecord{PID: st.PID, Argv: e.launch.Argv, Port: e.m.Port, Started: st.StartedAt}
		}
	}
	path := enginesFile(s.conf.Load())
	s.mu.Unlock()
	if err := writeJSONAtomic(path, recs); err != nil {
		s.logger.Warn("could not record the running engines", "err", err)
	}
}

// Detach forgets every engine without stopping it: gantry exits and the
// next one adopts them.
func (s *Scheduler) Detach() {
	s.saveEngines()
	s.mu.Lock()
	s.closed = true
	models := s.models
	for _, e := range models {
		e.stopIdleLocked()
	}
	s.mu.Unlock()
	for _, e := range models {
		if d, ok := e.proc.(interface{ Detach() }); ok {
			d.Detach()
		}
	}
}

// Changes lists what a Reload did.
type Changes struct {
	Restarted []string `json:"restarted"`
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Kept      []string `json:"kept"`
}

// Reload applies a new, validated config. Models whose engine launch or
// settings changed are stopped (the old engine drained by its stop) and
// come back on demand — at once when always-on; removed ones are stopped;
// unchanged ones keep running untouched. The listen address and memory
// total are the daemon's and the box's: they are not changed here.
func (s *Scheduler) Reload(ctx context.Context, cfg *config.Config) (Changes, error) {
	var ch Changes
	total := s.total
	if t := int64(cfg.Memory.Total); t > 0 {
		total = t
	}
	budget := total - int64(cfg.Memory.Reserve)
	plans := plan.Make(cfg, plan.Box{Facts: s.gpu, Total: total, Budget: budget}, s.opts.Inspect)
	var missing config.Problems
	for _, p := range plan.Problems(cfg, plans) {
		if !p.Warning && strings.Contains(p.Msg, "memory: is required") {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return ch, missing
	}
	s.mu.Lock()
	old := s.models
	s.mu.Unlock()
	next := map[string]*entry{}
	var retire []*entry
	for _, name := range cfg.ModelNames() {
		m, pl := cfg.Models[name], plans[name]
		l, err := engine.Build(m, engine.Host{Config: cfg, Self: s.opts.Self}, pl.Resources())
		if err != nil {
			return ch, err
		}
		if oe := old[name]; oe != nil {
			if reflect.DeepEqual(*oe.m, *m) && reflect.DeepEqual(oe.launch, l) && oe.plan.Bytes == pl.Bytes {
				next[name] = oe
				ch.Kept = append(ch.Kept, name)
				continue
			}
			retire = append(retire, oe)
			ch.Restarted = append(ch.Restarted, name)
		} else {
			ch.Added = append(ch.Added, name)
		}
	}
	for _, name := range sortedNames(old) {
		if _, ok := cfg.Models[name]; !ok {
			retire = append(retire, old[name])
			ch.Removed = append(ch.Removed, name)
		}
	}
	// Stop what goes before its successor starts: memory and ports are free.
	s.mu.Lock()
	for _, e := range retire {
		e.evicting = true
		e.stopIdleLocked()
	}
	s.broadcastLocked()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range retire {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.proc.Close(ctx) //nolint:errcheck // ends with the group gone
		}()
	}
	wg.Wait()
	for _, name := range append(append([]string{}, ch.Restarted...), ch.Added...) {
		e, err := s.newEntry(cfg, cfg.Models[name], plans[name])
		if err != nil {
			return ch, err // the old config's models that were kept still run
		}
		next[name] = e
	}
	s.mu.Lock()
	s.models = next
	s.plans = plans
	s.total, s.budget = total, budget
	s.conf.Store(cfg)
	var start []string
	for _, name := range cfg.ModelNames() {
		e := next[name]
		was := e.alwaysOn
		e.alwaysOn = s.alwaysOnIn(cfg, e.m)
		e.proc.SetRestart(e.alwaysOn)
		if e.alwaysOn && (!was || e.state == supervise.Stopped) {
			start = append(start, name)
		}
	}
	s.broadcastLocked()
	s.mu.Unlock()
	for _, n := range start {
		s.Begin(n) //nolint:errcheck // failures show in Status
	}
	s.emit(Event{Kind: "reload", Reason: fmt.Sprintf("restarted %v, added %v, removed %v", ch.Restarted, ch.Added, ch.Removed)})
	return ch, nil
}

func sortedNames[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// newEntry builds the runtime record and engine of one model.
func (s *Scheduler) newEntry(cfg *config.Config, m *config.Model, pl *plan.Model) (*entry, error) {
	o := s.opts
	l, err := engine.Build(m, engine.Host{Config: cfg, Self: o.Self}, pl.Resources())
	if err != nil {
		return nil, err
	}
	e := &entry{m: m, state: supervise.Stopped, memory: pl.Bytes, baseURL: l.BaseURL, plan: pl, launch: l}
	e.alwaysOn = s.alwaysOnIn(cfg, m)
	so := o.Supervise
	so.Restart = e.alwaysOn
	so.Logger = o.Logger
	so.OnEvent = s.onProcEvent
	so.Redact = config.Redactor(cfg)
	p, err := s.newRunner(cfg, o, m, l, pl, so)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	e.proc = p
	return e, nil
}

// newRunner makes the runner of one model: the shared Ollama server's
// model for engine ollama (unless a test replaces runners), else a
// supervised process.
func (s *Scheduler) newRunner(cfg *config.Config, o Options, m *config.Model, l engine.Launch, pl *plan.Model, so supervise.Options) (Runner, error) {
	if m.Engine != config.EngineOllama || o.NewRunner != nil {
		nr := o.NewRunner
		if nr == nil {
			nr = newProcess
		}
		return nr(m, l, cfg.LogPath(m), so)
	}
	if s.ollama == nil {
		srv, err := ollama.NewServer(m, l, filepath.Join(cfg.Root, "logs", "ollama", "serve.log"), so)
		if err != nil {
			return nil, err
		}
		s.ollama = srv
	}
	return ollama.NewModel(m, s.ollama, cfg.ModelPath(m), pl.Context, so), nil
}

// alwaysOnIn reports whether m is always-on in cfg by its mode or the
// active profile.
func (s *Scheduler) alwaysOnIn(cfg *config.Config, m *config.Model) bool {
	if m.AlwaysOn() {
		return true
	}
	if p := cfg.Profiles[s.profile]; p != nil {
		for _, n := range p.AlwaysOn {
			if r := cfg.Resolve(n); r != nil && r.Name == m.Name {
				return true
			}
		}
	}
	return false
}

func (s *Scheduler) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if s.events != nil {
		s.events(ev)
	}
}

// broadcastLocked wakes everyone waiting for a change.
func (s *Scheduler) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitLocked releases s.mu until something changes, ctx is done or d
// passes (d ≤ 0: no limit), then takes it again.
func (s *Scheduler) waitLocked(ctx context.Context, d time.Duration) error {
	ch := s.changed
	s.mu.Unlock()
	defer s.mu.Lock()
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
	case <-timeout:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// onProcEvent follows the engines' state changes; it runs without any lock
// of the process held.
func (s *Scheduler) onProcEvent(ev supervise.Event) {
	s.mu.Lock()
	e := s.models[ev.Model]
	if e != nil {
		if ev.To == supervise.Starting {
			e.diagnosis = ""
		}
		// Events of one engine come from several goroutines and may arrive
		// out of order: take the engine's state now, not the event's.
		prev := e.state
		e.state = e.proc.State()
		e.reason = ev.Reason
		switch e.state {
		case supervise.Ready:
			if prev != supervise.Ready {
				e.readyAt = time.Now()
			}
			if mm, ok := e.proc.(interface{ MeasuredMemory() int64 }); ok {
				if n := mm.MeasuredMemory(); n > 0 && int64(e.m.Memory) == 0 {
					e.memory, e.memorySource = n, "measured: the engine reports "+config.FormatBytes(n)
				}
			}
			e.armIdleLocked(s)
		case supervise.Starting:
			e.holds = true // always-on restarts reserve again
		case supervise.Stopped:
			e.holds, e.evicting = false, false
			e.stopIdleLocked()
		case supervise.Failed:
			e.failedAt = ev.Time
			if !e.alwaysOn {
				e.holds = false
			}
			e.stopIdleLocked()
		}
		s.broadcastLocked()
	}
	s.mu.Unlock()
	// The state is taken first (a request must not be sent to an engine
	// known to be gone); the diagnosis, which reads the log, after.
	diag := ""
	if e != nil && (ev.To == supervise.Failed || ev.To == supervise.Ready) {
		diag = s.diagnose(e, ev)
		s.mu.Lock()
		e.diagnosis = diag
		s.mu.Unlock()
	}
	switch ev.To {
	case supervise.Starting, supervise.Ready, supervise.Stopped, supervise.Failed:
		s.saveEngines()
	}
	ev2 := Event{Kind: "state", Model: ev.Model, From: string(ev.From), To: string(ev.To), Reason: ev.Reason, Time: ev.Time, Diagnosis: diag}
	if ev.To == supervise.Ready && e != nil {
		if st := e.proc.Status(); !st.StartedAt.IsZero() && !st.ReadyAt.IsZero() {
			ev2.LoadSeconds = st.ReadyAt.Sub(st.StartedAt).Seconds()
		}
	}
	s.emit(ev2)
}

// diagnose reads the engine's log (and the failure reason) for known
// failure signatures. On a failure it asks nvidia-smi who holds GPU memory,
// so the diagnosis can name the PIDs.
func (s *Scheduler) diagnose(e *entry, ev supervise.Event) string {
	var lines []string
	if lg := e.proc.Log(); lg != nil {
		lines = lg.Tail(300)
	}
	lines = append(lines, ev.Reason)
	c := diagnose.Context{Port: e.m.Port, Engine: e.m.Engine}
	if ev.To == supervise.Failed && s.procs != nil {
		c.Procs = s.procs()
	}
	return diagnose.Summary(diagnose.Scan(lines, c))
}

// IsEmbedding reports whether a model serves embeddings rather than
// generation: its files say so, or it is a sim started with --embedding.
func (s *Scheduler) IsEmbedding(name string) bool {
	e, err := s.lookup(name)
	if err != nil {
		return false
	}
	if e.plan.Info != nil && e.plan.Info.Kind == "embedding" {
		return true
	}
	return e.m.Engine == config.EngineSim && slices.Contains(e.m.Args, "--embedding")
}

// Model returns one model's status from a Status (zero when absent).
func (st Status) Model(name string) ModelStatus {
	for _, m := range st.Models {
		if m.Name == name {
			return m
		}
	}
	return ModelStatus{}
}

// Box is the machine the scheduler plans for.
func (s *Scheduler) Box() plan.Box {
	s.mu.Lock()
	defer s.mu.Unlock()
	return plan.Box{Facts: s.gpu, Total: s.total, Budget: s.budget}
}

// Config is the config the scheduler runs.
func (s *Scheduler) Config() *config.Config { return s.conf.Load() }

// Boot starts every always-on model and every slot's default member in the
// background; failures are retried with backoff and show in Status.
func (s *Scheduler) Boot(ctx context.Context) {
	var names []string
	s.mu.Lock()
	for _, name := range s.conf.Load().ModelNames() {
		if s.models[name].alwaysOn {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	for _, sl := range s.conf.Load().Slots {
		if m := s.conf.Load().Resolve(sl.Default); m != nil {
			names = append(names, m.Name)
		}
	}
	for _, name := range names {
		go func() {
			if err := s.Start(ctx, name); err != nil && ctx.Err() == nil {
				s.logger.Warn("model did not start at boot", "model", name, "err", err)
			}
		}()
	}
}

func (s *Scheduler) lookup(name string) (*entry, error) {
	s.mu.Lock()
	e := s.lookupLocked(name)
	s.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownModel, name, s.KnownNames())
	}
	return e, nil
}

// lookupLocked resolves a name or alias in the current config; nil when
// unknown.
func (s *Scheduler) lookupLocked(name string) *entry {
	m := s.conf.Load().Resolve(name)
	if m == nil {
		return nil
	}
	return s.models[m.Name]
}

// KnownNames lists the model names and aliases a request may use.
func (s *Scheduler) KnownNames() string {
	var names []string
	for _, n := range s.conf.Load().ModelNames() {
		names = append(names, n)
		names = append(names, s.conf.Load().Models[n].Aliases...)
	}
	if len(names) == 0 {
		return "none configured"
	}
	return strings.Join(names, ", ")
}

// Lease is a ready engine handed to one request. Release it exactly once
// when the response is done.
type Lease struct {
	// Model is the model that serves the request: the one asked for, or its
	// fallback.
	Model *config.Model
	// BaseURL is the engine's address.
	BaseURL string
	// FallbackFor names the model that was asked for when a fallback serves.
	FallbackFor string

	s *Scheduler
	e *entry
}

// Release ends the lease: the model's idle timer starts when its last
// in-flight request is released.
func (l *Lease) Release() {
	s := l.s
	s.mu.Lock()
	l.e.inflight--
	l.e.lastUsed = time.Now()
	if l.e.inflight == 0 {
		l.e.armIdleLocked(s)
		s.broadcastLocked() // a drain may be waiting for this
	}
	s.mu.Unlock()
}

// Acquire returns a ready engine for the model (name or alias), starting
// it, switching its slot or evicting idle models as needed, and waiting
// while it loads. When the model cannot start and has a fallback, the
// fallback serves.
func (s *Scheduler) Acquire(ctx context.Context, name string) (*Lease, error) {
	// The fast path: a ready model costs one lock and no allocation
	// besides the lease.
	s.mu.Lock()
	e := s.lookupLocked(name)
	if e == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownModel, name, s.KnownNames())
	}
	if e.state == supervise.Ready && !e.draining && !e.evicting {
		l := e.leaseLocked(s)
		s.mu.Unlock()
		return l, nil
	}
	s.mu.Unlock()
	return s.acquireSlow(ctx, e, "", 0)
}

func (e *entry) leaseLocked(s *Scheduler) *Lease {
	e.inflight++
	e.lastUsed = time.Now()
	e.stopIdleLocked()
	return &Lease{Model: e.m, BaseURL: e.baseURL, s: s, e: e}
}

func (s *Scheduler) acquireSlow(ctx context.Context, e *entry, fallbackFor string, depth int) (*Lease, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if n := e.queued; n >= e.m.QueueLimit {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %d requests are already waiting for %s (queue_limit)", ErrQueueFull, n, e.m.Name)
	}
	if e.draining && s.conf.Load().Slots[e.m.Slot].DuringSwitch == "refuse" {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: slot %s is switching away from %s; retry shortly", ErrSlotSwitching, e.m.Slot, e.m.Name)
	}
	e.queued++
	s.mu.Unlock()

	err := s.ensure(ctx, e)

	s.mu.Lock()
	e.queued--
	if err == nil {
		l := e.leaseLocked(s)
		l.FallbackFor = fallbackFor
		s.mu.Unlock()
		return l, nil
	}
	if ctx.Err() != nil && e.m.AbandonedLoads == "cancel" && e.queued == 0 && e.inflight == 0 &&
		e.state == supervise.Starting && !e.alwaysOn {
		// Everybody who wanted this load went away: stop it.
		s.mu.Unlock()
		s.logger.Info("load abandoned by every request: stopping", "model", e.m.Name)
		go s.Stop(context.Background(), e.m.Name) //nolint:errcheck // shows in Status
		return nil, err
	}
	fb := e.m.Fallback
	e.armIdleLocked(s)
	s.mu.Unlock()
	if fb != "" && depth < len(s.models) && (errors.Is(err, ErrStartFailed) || errors.Is(err, ErrInsufficientMemory)) {
		f, ferr := s.lookup(fb)
		if ferr == nil {
			s.emit(Event{Kind: "fallback", Model: e.m.Name, To: f.m.Name, Reason: err.Error()})
			if fallbackFor == "" {
				fallbackFor = e.m.Name
			}
			return s.acquireSlow(ctx, f, fallbackFor, depth+1)
		}
	}
	return nil, err
}

// Start starts a model (name or alias) through the same admission as a
// request (memory, slot) and waits until it is ready.
func (s *Scheduler) Start(ctx context.Context, name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	e.queued++
	s.mu.Unlock()
	err = s.ensure(ctx, e)
	s.mu.Lock()
	e.queued--
	e.armIdleLocked(s)
	s.mu.Unlock()
	return err
}

// Begin starts a model (if it is not running) without waiting for it to be
// ready; the start goes on in the background and shows in Status. It
// returns once the start is under way (or has already failed: then with
// its error), so a status read right after already says "starting".
func (s *Scheduler) Begin(name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		err := s.Start(context.Background(), name)
		if err != nil {
			s.logger.Warn("start failed", "model", name, "err", err)
		}
		done <- err
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for e.state != supervise.Starting && e.state != supervise.Ready && time.Now().Before(deadline) {
		select {
		case err := <-done:
			return err
		default:
		}
		s.waitLocked(context.Background(), 10*time.Millisecond) //nolint:errcheck
	}
	return nil
}

// ensure makes e's engine ready: it waits out stops and switches under
// way, switches e's slot to it, admits it into the memory budget (evicting
// idle on-demand models LRU-first) and starts it. It returns nil when e is
// ready and not being drained or stopped.
func (s *Scheduler) ensure(ctx context.Context, e *entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.releaseSlotLocked(e) // on every way out, with s.mu held
	for {
		if s.closed {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case e.state == supervise.Ready && !e.draining && !e.evicting:
			return nil
		case e.evicting || e.draining || e.state == supervise.Stopping:
			// A stop or a slot switch is under way; once it is done the
			// model is started again (never hung on a dying engine).
			if err := s.waitLocked(ctx, 0); err != nil {
				return err
			}
			continue
		case e.state == supervise.Starting:
			if err := s.startLocked(ctx, e); err != nil {
				return err
			}
			continue
		case e.state == supervise.Failed && e.alwaysOn:
			return fmt.Errorf("%w: %s: %s", ErrStartFailed, e.m.Name, e.reason)
		case e.state == supervise.Failed && e.m.Fallback != "" && time.Since(e.failedAt) < retryFailedAfter:
			return fmt.Errorf("%w: %s: %s", ErrStartFailed, e.m.Name, e.reason)
		}
		// Stopped (or failed and worth another try): refuse what is known
		// not to work, then take the slot, then the memory, then start.
		for _, f := range e.plan.Findings {
			// A model too big for the budget is admission's to refuse, with
			// its own error and the holders named.
			if f.Level == plan.LevelError && f.Rule != "does-not-fit" {
				return fmt.Errorf("%w: %s: %s — %s", ErrStartFailed, e.m.Name, f.Reason, f.Fix)
			}
		}
		if e.m.Slot != "" {
			switched, err := s.takeSlotLocked(ctx, e)
			if err != nil {
				return err
			}
			if switched {
				continue
			}
		}
		if !e.holds {
			ok, err := s.admitLocked(ctx, e)
			if err != nil {
				s.releaseSlotLocked(e)
				return err
			}
			if !ok {
				continue // evictions under way; look again
			}
		}
		s.releaseSlotLocked(e)
		if err := s.startLocked(ctx, e); err != nil {
			return err
		}
	}
}

// startLocked starts (or joins the start of) e's engine with s.mu released.
func (s *Scheduler) startLocked(ctx context.Context, e *entry) error {
	s.mu.Unlock()
	err := e.proc.Start(ctx)
	s.mu.Lock()
	if err == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, supervise.ErrClosed) {
		return ErrClosed
	}
	if e.state == supervise.Stopping || e.state == supervise.Stopped && e.evicting {
		return nil // stopped under us on purpose; ensure looks again
	}
	return fmt.Errorf("%w: %s: %v", ErrStartFailed, e.m.Name, err)
}

// takeSlotLocked makes e the slot's member: when another member holds the
// slot it drains and stops that one (switched = true, look again).
func (s *Scheduler) takeSlotLocked(ctx context.Context, e *entry) (switched bool, err error) {
	slot := e.m.Slot
	if t := s.switching[slot]; t != nil && t != e {
		return true, s.waitLocked(ctx, 0) // another switch first
	}
	var occ *entry
	for _, o := range s.models {
		if o != e && o.m.Slot == slot && (o.holds || o.state != supervise.Stopped) {
			occ = o
		}
	}
	if occ == nil {
		s.switching[slot] = e // hold the slot until e has its memory
		return false, nil
	}
	s.switching[slot] = e
	s.emit(Event{Kind: "switch", Model: slot, From: occ.m.Name, To: e.m.Name, Reason: "requested"})
	s.logger.Info("switching slot", "slot", slot, "from", occ.m.Name, "to", e.m.Name)
	// The switch goes on even if this caller gives up: a half-drained
	// member helps nobody.
	s.residencyLocked(occ, s.conf.Load().Slots[slot].MinResidency.D())
	occ.draining = true
	s.broadcastLocked()
	s.drainLocked(occ)
	occ.draining = false
	occ.evicting = true
	s.broadcastLocked()
	s.mu.Unlock()
	occ.proc.Stop(context.Background()) //nolint:errcheck // the stop ends with the group gone either way
	s.mu.Lock()
	occ.evicting = false
	s.broadcastLocked()
	return true, ctx.Err()
}

// residencyLocked waits, with s.mu released while waiting, until occ has
// held the slot for minResidency if it has been in use; a load under way
// that someone waits for is finished first. Meanwhile occ serves as usual.
func (s *Scheduler) residencyLocked(occ *entry, minResidency time.Duration) {
	bg := context.Background()
	for {
		// Someone waits for this load (admitted, maybe not yet launched):
		// let it finish, or it is wasted.
		if occ.holds && occ.queued > 0 && (occ.state == supervise.Starting || occ.state == supervise.Stopped) {
			s.waitLocked(bg, 0) //nolint:errcheck
			continue
		}
		// A member in use (now, or since it became ready) keeps the slot
		// for minResidency; an unused one gives way at once.
		inUse := occ.queued > 0 || occ.inflight > 0 || occ.lastUsed.After(occ.readyAt)
		if occ.state != supervise.Ready || !inUse {
			break
		}
		left := minResidency - time.Since(occ.readyAt)
		if left <= 0 {
			break
		}
		s.waitLocked(bg, left) //nolint:errcheck
	}
}

// drainLocked waits, with s.mu released while waiting, until occ's
// in-flight requests have finished, at most its stop_timeout. New requests
// for occ wait (or are refused) meanwhile.
func (s *Scheduler) drainLocked(occ *entry) {
	bg := context.Background()
	deadline := time.Now().Add(occ.m.StopTimeout.D())
	for occ.inflight > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			s.logger.Warn("drain timed out; cutting in-flight requests", "model", occ.m.Name, "inflight", occ.inflight)
			break
		}
		s.waitLocked(bg, left) //nolint:errcheck
	}
}

func (s *Scheduler) releaseSlotLocked(e *entry) {
	if e.m.Slot != "" && s.switching[e.m.Slot] == e {
		delete(s.switching, e.m.Slot)
		s.broadcastLocked()
	}
}

// admitLocked reserves e's memory. When it does not fit it picks idle
// on-demand models to evict, least recently used first, stops them and
// answers ok = false (look again). When even evicting every idle model
// would not make room it answers ErrInsufficientMemory naming the holders.
func (s *Scheduler) admitLocked(ctx context.Context, e *entry) (bool, error) {
	if e.memory > s.budget {
		return false, fmt.Errorf("%w: %s needs %s but the whole budget is %s (memory.total %s − memory.reserve %s)",
			ErrInsufficientMemory, e.m.Name, config.FormatBytes(e.memory), config.FormatBytes(s.budget),
			config.FormatBytes(s.total), s.conf.Load().Memory.Reserve)
	}
	free := s.budget - s.reservedLocked()
	if e.memory <= free {
		e.holds = true
		s.broadcastLocked()
		return true, nil
	}
	var idle, pending []*entry
	for _, o := range s.models {
		switch {
		case !o.holds || o == e:
		case o.evicting || o.state == supervise.Stopping:
			pending = append(pending, o)
		case o.evictable():
			idle = append(idle, o)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastUsed.Before(idle[j].lastUsed) })
	var victims []*entry
	gain := int64(0)
	for _, o := range pending {
		gain += o.memory
	}
	for _, o := range idle {
		if free+gain >= e.memory {
			break
		}
		victims = append(victims, o)
		gain += o.memory
	}
	if free+gain < e.memory {
		return false, fmt.Errorf("%w: %s needs %s but only %s of the %s budget is free; held by %s",
			ErrInsufficientMemory, e.m.Name, config.FormatBytes(e.memory), config.FormatBytes(max(free, 0)),
			config.FormatBytes(s.budget), s.holdersLocked(e))
	}
	if len(victims) == 0 {
		return false, s.waitLocked(ctx, 0) // stops already under way will make room
	}
	for _, v := range victims {
		v.evicting = true
		v.stopIdleLocked()
	}
	s.broadcastLocked()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, v := range victims {
		s.logger.Info("evicting idle model to make room", "model", v.m.Name, "for", e.m.Name)
		s.emit(Event{Kind: "eviction", Model: v.m.Name, Reason: "make room for " + e.m.Name})
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.proc.Stop(context.Background()) //nolint:errcheck
		}()
	}
	wg.Wait()
	s.mu.Lock()
	for _, v := range victims {
		v.evicting = false
	}
	s.broadcastLocked()
	return false, nil
}

// evictable reports whether a model holding memory may be stopped to make
// room: on-demand, nothing in flight or waiting, not mid-start.
func (e *entry) evictable() bool {
	return !e.alwaysOn && e.inflight == 0 && e.queued == 0 && !e.draining &&
		(e.state == supervise.Ready || e.state == supervise.Failed || e.state == supervise.Stopped)
}

func (s *Scheduler) reservedLocked() int64 {
	var n int64
	for _, o := range s.models {
		if o.holds {
			n += o.memory
		}
	}
	return n
}

// holdersLocked describes who holds memory, for the refusal message.
func (s *Scheduler) holdersLocked(except *entry) string {
	var parts []string
	for _, n := range s.conf.Load().ModelNames() {
		o := s.models[n]
		if !o.holds || o == except {
			continue
		}
		why := "idle"
		switch {
		case o.alwaysOn:
			why = "always-on"
		case o.inflight > 0 || o.queued > 0:
			why = fmt.Sprintf("busy: %d in flight, %d waiting", o.inflight, o.queued)
		case o.state == supervise.Starting:
			why = "starting"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", o.m.Name, config.FormatBytes(o.memory), why))
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, ", ")
}

// armIdleLocked starts the idle timer of an on-demand model that is ready
// and has nothing in flight or waiting.
func (e *entry) armIdleLocked(s *Scheduler) {
	if e.alwaysOn || e.inflight > 0 || e.queued > 0 || e.state != supervise.Ready || e.m.IdleTimeout <= 0 {
		return
	}
	// One timer per model, reset on every release: no allocation on the
	// request path. A stale firing is harmless: idleOut checks again.
	if e.idle == nil {
		e.idle = time.AfterFunc(e.m.IdleTimeout.D(), func() { s.idleOut(e) })
		return
	}
	e.idle.Reset(e.m.IdleTimeout.D())
}

func (e *entry) stopIdleLocked() {
	if e.idle != nil {
		e.idle.Stop()
	}
}

// idleOut stops a model whose idle timer fired, unless a request came in
// meanwhile.
func (s *Scheduler) idleOut(e *entry) {
	s.mu.Lock()
	if e.alwaysOn || e.inflight > 0 || e.queued > 0 || e.evicting || e.draining || e.state != supervise.Ready ||
		time.Since(e.lastUsed) < e.m.IdleTimeout.D() && !e.lastUsed.IsZero() {
		s.mu.Unlock()
		return
	}
	e.evicting = true
	s.broadcastLocked()
	s.mu.Unlock()
	s.logger.Info("idle timeout: stopping", "model", e.m.Name, "idle_timeout", e.m.IdleTimeout)
	s.emit(Event{Kind: "idle", Model: e.m.Name, Reason: "no requests for " + e.m.IdleTimeout.String()})
	e.proc.Stop(context.Background()) //nolint:errcheck
	s.mu.Lock()
	e.evicting = false
	s.broadcastLocked()
	s.mu.Unlock()
}

// Stop stops a model and waits until its engine is gone.
func (s *Scheduler) Stop(ctx context.Context, name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	e.stopIdleLocked()
	e.evicting = true
	s.broadcastLocked()
	s.mu.Unlock()
	err = e.proc.Stop(ctx)
	s.mu.Lock()
	e.evicting = false
	s.broadcastLocked()
	s.mu.Unlock()
	return err
}

// Switch makes model the running member of slot and waits until it is ready.
func (s *Scheduler) Switch(ctx context.Context, slot, model string) error {
	if _, ok := s.conf.Load().Slots[slot]; !ok {
		return fmt.Errorf("%w: no slot %q (slots: %s)", ErrUnknownModel, slot, strings.Join(slices.Sorted(maps.Keys(s.conf.Load().Slots)), ", "))
	}
	e, err := s.lookup(model)
	if err != nil {
		return err
	}
	if e.m.Slot != slot {
		return fmt.Errorf("%w: %s is not a member of slot %s", ErrUnknownModel, e.m.Name, slot)
	}
	return s.Start(ctx, e.m.Name)
}

// Process returns the engine of a model (name or alias).
func (s *Scheduler) Process(name string) (Runner, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return e.proc, nil
}

// Profile returns the active profile ("" when none).
func (s *Scheduler) Profile() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profile
}

// SetProfile makes name the active profile ("" for none): models it lists
// become always-on and are started; models that were always-on only by the
// old profile become on-demand and are stopped when idle. The choice is
// saved and survives a restart of gantry.
func (s *Scheduler) SetProfile(ctx context.Context, name string) error {
	if _, ok := s.conf.Load().Profiles[name]; !ok && name != "" {
		return fmt.Errorf("%w: no profile %q (profiles: %s)", ErrUnknownModel, name, strings.Join(slices.Sorted(maps.Keys(s.conf.Load().Profiles)), ", "))
	}
	s.mu.Lock()
	old := s.profile
	s.profile = name
	var start, stop []string
	for _, n := range s.conf.Load().ModelNames() {
		e := s.models[n]
		was := e.alwaysOn
		e.alwaysOn = s.alwaysOnIn(s.conf.Load(), e.m)
		e.proc.SetRestart(e.alwaysOn)
		switch {
		case e.alwaysOn && !was:
			e.stopIdleLocked()
			start = append(start, n)
		case !e.alwaysOn && was:
			if e.inflight == 0 && e.queued == 0 {
				stop = append(stop, n)
			} else {
				e.armIdleLocked(s)
			}
		}
	}
	s.broadcastLocked()
	s.mu.Unlock()
	if err := saveState(s.state, persisted{Profile: name}); err != nil {
		s.logger.Warn("could not save the active profile", "err", err)
	}
	s.emit(Event{Kind: "profile", From: old, To: name})
	var errs []error
	for _, n := range stop {
		if err := s.Stop(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range start {
		if err := s.Begin(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ModelStatus is one model's state, as /api/status and `gantry ps` show it.
type ModelStatus struct {
	Name        string          `json:"name"`
	Engine      string          `json:"engine"`
	State       supervise.State `json:"state"`
	Reason      string          `json:"reason,omitempty"`
	Phase       string          `json:"phase,omitempty"`
	Detail      string          `json:"detail,omitempty"`
	Port        int             `json:"port"`
	PID         int             `json:"pid"`
	Starts      int             `json:"starts"`
	MemoryBytes int64           `json:"memory_bytes"`
	Inflight    int             `json:"inflight"`
	Queued      int             `json:"queued"`
	LastUsed    *time.Time      `json:"last_used"`
	Diagnosis   string          `json:"diagnosis"`
	Mode        string          `json:"mode"`
	AlwaysOn    bool            `json:"always_on"`
	Slot        string          `json:"slot,omitempty"`
	Aliases     []string        `json:"aliases,omitempty"`
	Fallback    string          `json:"fallback,omitempty"`
	Runtime     string          `json:"runtime"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	ReadyAt     *time.Time      `json:"ready_at,omitempty"`
	LastLogLine string          `json:"last_log_line,omitempty"`
	// Adopted is true for an engine a previous gantry started.
	Adopted bool `json:"adopted,omitempty"`
	// MemorySource says where memory_bytes comes from (config or estimate).
	MemorySource string         `json:"memory_source"`
	Findings     []plan.Finding `json:"findings,omitempty"`
}

// MemoryStatus is the budget and what is reserved of it.
type MemoryStatus struct {
	TotalBytes    int64 `json:"total_bytes"`
	BudgetBytes   int64 `json:"budget_bytes"`
	ReservedBytes int64 `json:"reserved_bytes"`
}

// SlotStatus is which member holds a slot.
type SlotStatus struct {
	Name    string   `json:"name"`
	Port    int      `json:"port"`
	Current string   `json:"current,omitempty"`
	Members []string `json:"members"`
}

// Status is the whole picture.
type Status struct {
	Models  []ModelStatus `json:"models"`
	Memory  MemoryStatus  `json:"memory"`
	Slots   []SlotStatus  `json:"slots"`
	Profile string        `json:"profile"`
	GPU     gpu.Facts     `json:"gpu"`
}

// SetGPUSource makes Status report live GPU telemetry from fn (a cached
// nvidia-smi query) instead of the facts read at start.
func (s *Scheduler) SetGPUSource(fn func() gpu.Facts) {
	s.mu.Lock()
	s.gpuNow = fn
	s.mu.Unlock()
}

// Status returns every model's state, sorted by name.
func (s *Scheduler) Status() Status {
	s.mu.Lock()
	fn := s.gpuNow
	s.mu.Unlock()
	var live *gpu.Facts
	if fn != nil {
		f := fn()
		live = &f
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gpu
	if live != nil {
		g = *live
	}
	st := Status{Models: []ModelStatus{}, Slots: []SlotStatus{}, Profile: s.profile, GPU: g,
		Memory: MemoryStatus{TotalBytes: s.total, BudgetBytes: s.budget, ReservedBytes: s.reservedLocked()}}
	for _, name := range s.conf.Load().ModelNames() {
		e := s.models[name]
		ps := e.proc.Status()
		// The state the scheduler acts on; the engine's phase and detail live.
		ms := ModelStatus{Name: name, Engine: e.m.Engine, State: e.state, Reason: ps.Reason, Phase: ps.Phase,
			Detail: ps.Detail, Port: e.m.Port, PID: ps.PID, Starts: ps.Starts, MemoryBytes: e.memory,
			Inflight: e.inflight, Queued: e.queued, Mode: e.m.Mode, AlwaysOn: e.alwaysOn, Slot: e.m.Slot,
			Aliases: e.m.Aliases, Fallback: e.m.Fallback, Runtime: e.m.Runtime, LastLogLine: ps.LastLine,
			MemorySource: cmp.Or(e.memorySource, e.plan.Source), Findings: e.plan.Findings, Diagnosis: e.diagnosis,
			Adopted: ps.Adopted}
		if !e.lastUsed.IsZero() {
			t := e.lastUsed
			ms.LastUsed = &t
		}
		if !ps.StartedAt.IsZero() {
			ms.StartedAt = &ps.StartedAt
		}
		if !ps.ReadyAt.IsZero() {
			ms.ReadyAt = &ps.ReadyAt
		}
		st.Models = append(st.Models, ms)
	}
	for _, name := range slices.Sorted(maps.Keys(s.conf.Load().Slots)) {
		ss := SlotStatus{Name: name, Port: s.conf.Load().Slots[name].Port, Members: []string{}}
		for _, n := range s.conf.Load().ModelNames() {
			e := s.models[n]
			if e.m.Slot != name {
				continue
			}
			ss.Members = append(ss.Members, n)
			if e.holds && !e.draining {
				ss.Current = n
			}
		}
		st.Slots = append(st.Slots, ss)
	}
	return st
}

// Close stops every engine (in parallel) and waits for them.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	models := s.models
	s.closed = true
	for _, e := range s.models {
		e.stopIdleLocked()
	}
	s.broadcastLocked()
	s.mu.Unlock()
	var wg sync.WaitGroup
	var emu sync.Mutex
	var errs []error
	for _, e := range models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.proc.Close(ctx); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", e.m.Name, err))
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

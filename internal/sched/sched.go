// Package sched decides which engines run. It owns one supervised engine per
// configured model and is the only place that starts and stops them: on
// demand when a request arrives, within the memory budget (evicting idle
// on-demand models, least recently used first), one member at a time on a
// slot (draining before a switch), always-on models at boot and after a
// profile switch, and idle models after their idle_timeout.
package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// Scheduler runs the models of one config.
type Scheduler struct {
	conf      atomic.Pointer[config.Config] // swapped by Reload
	logger    *slog.Logger
	budget    int64  // bytes engines may reserve in all
	total     int64  // the memory the budget is taken from
	stateFile string // <root>/state/gantry.json: the last load times, the active profile

	mu        sync.Mutex
	models    map[string]*entry
	changed   chan struct{}     // closed and replaced on every change waiters care about
	switching map[string]*entry // slot → the member it is switching to
	profile   string
	plans     map[string]*plan.Model
	gpu       gpu.Facts
	procs     func() []gpu.Proc // GPU processes now, for diagnoses
	gpuNow    func() gpu.Facts  // live telemetry for Status, nil: the start facts
	opts      Options
	closed    bool
	events    func(status.Event)
	registry  *supervise.Registry // the engine processes, for the next gantry
	loads     map[string]float64  // model → seconds its last load took
	// detectedUnified is what nvidia-smi said; memory.unified may override.
	detectedUnified bool
	stopWatch       context.CancelFunc // ends the memory watchdog
}

// entry is one model's runtime record; guarded by Scheduler.mu.
type entry struct {
	m        *config.Model
	proc     Runner
	state    status.State // last state the engine reported
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
	// pageCache is what the last start dropped of the checkpoint from
	// the page cache (unified memory only).
	pageCache *status.PageCache
	// failDiag is the diagnosis of the failed start whose error is
	// failErr, made once for every request that waited on it.
	failErr, failDiag string
	// queuedInteractive and inflightInteractive count the interactive
	// ones among queued and inflight; interactiveAt is when one was last
	// leased (priority.go).
	queuedInteractive, inflightInteractive int
	interactiveAt                          time.Time
}

// Options for New.
type Options struct {
	Logger *slog.Logger
	// Self is the gantry executable (for `gantry sim` models).
	Self string
	// OnEvent receives every event.
	OnEvent func(status.Event)
	// Supervise tunes the processes (backoff, probes); Restart is set per
	// model from its mode.
	Supervise supervise.Options
	// MemoryTotal overrides memory.total: auto (tests).
	MemoryTotal int64
	// GPU replaces asking nvidia-smi (tests).
	GPU *gpu.Facts
	// Inspect replaces reading model files (tests).
	Inspect plan.Inspector
	// NewRunner builds each model's runner; nil: a supervised process for
	// every model (the daemon passes one that runs engine ollama's models
	// on a shared `ollama serve`; unit tests pass fakes).
	NewRunner NewRunner
	// StateFile is where the active profile is kept across restarts;
	// default <root>/state/gantry.json.
	StateFile string
	// Docker runs the docker-runtime models' containers (nil: none can
	// start; the daemon builds it when the config has such models).
	Docker *container.Client
	// MemInfo replaces reading /proc/meminfo for the watchdog (tests);
	// WatchEvery is how often it reads (default 1 s).
	MemInfo    func() (gpu.MemInfo, error)
	WatchEvery time.Duration
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
		f := gpu.Detect(context.Background(), gpu.NvidiaSMI, gpu.ReadMemInfo)
		facts = &f
	}
	detected := facts.Unified
	registry := supervise.OpenRegistry(enginesFile(cfg))
	var ours int64
	if facts.Memory != nil {
		ours = ownedGPUBytes(facts.Procs, registry, supervise.ProcessGroup)
	}
	b := plan.MakeBox(cfg, *facts, ours)
	facts = &b.Facts
	total := b.Total
	if o.MemoryTotal > 0 {
		total = o.MemoryTotal
	}
	if total <= 0 {
		return nil, fmt.Errorf("memory.total is auto but the machine's memory is unknown (%s): set memory.total", facts.Source)
	}
	if o.StateFile == "" {
		o.StateFile = StatePath(cfg)
	}
	s := &Scheduler{logger: o.Logger, total: total, budget: total - int64(cfg.Memory.Reserve),
		models: map[string]*entry{}, events: o.OnEvent, changed: make(chan struct{}),
		switching: map[string]*entry{}, stateFile: o.StateFile, gpu: *facts, opts: o, detectedUnified: detected}
	s.conf.Store(cfg)
	s.registry = registry
	if o.GPU == nil && len(facts.GPUs) > 0 {
		s.procs = func() []gpu.Proc {
			f := gpu.Detect(context.Background(), gpu.NvidiaSMI, gpu.ReadMemInfo)
			return f.Procs
		}
	}
	st, err := loadState(o.StateFile)
	if err == nil {
		s.loads = st.LoadSeconds
	}
	if err == nil && st.Profile != "" {
		if _, ok := cfg.Profiles[st.Profile]; ok {
			s.profile = st.Profile
		} else {
			s.logger.Warn("the saved profile is no longer configured; none is active", "profile", st.Profile)
		}
	}
	s.plans = plan.Make(cfg, plan.Box{Facts: *facts, Total: total, Budget: s.budget}, o.Inspect)
	if missing := plan.Unreserved(cfg, s.plans); len(missing) > 0 {
		return nil, missing
	}
	s.logInvalid(cfg, s.plans)
	models, err := s.newEntries(cfg, s.plans, cfg.ModelNames())
	if err != nil {
		return nil, err
	}
	s.models = models
	return s, nil
}

// logInvalid says, when a config is taken, which models cannot start as
// configured (what `config validate` reports for them): gantry serves the
// rest, and ps and the dashboard show these as invalid.
func (s *Scheduler) logInvalid(cfg *config.Config, plans map[string]*plan.Model) {
	for _, name := range cfg.ModelNames() {
		if why := plans[name].Invalid(); why != "" {
			s.logger.Warn("model is invalid: it cannot start until the config is fixed", "model", name, "problem", why)
		}
	}
}

// newEntries builds the entries of the named models; on an error it closes
// those already built (their logs and tails) and builds none.
func (s *Scheduler) newEntries(cfg *config.Config, plans map[string]*plan.Model, names []string) (map[string]*entry, error) {
	out := map[string]*entry{}
	for _, name := range names {
		e, err := s.newEntry(cfg, cfg.Models[name], plans[name])
		if err != nil {
			for _, b := range out {
				b.proc.Close(context.Background()) //nolint:errcheck // never started: nothing to stop
			}
			return nil, err
		}
		out[name] = e
	}
	return out, nil
}

// newEntry builds the runtime record and engine of one model.
func (s *Scheduler) newEntry(cfg *config.Config, m *config.Model, pl *plan.Model) (*entry, error) {
	o := s.opts
	l, err := launch.Build(m, launch.Host{Config: cfg, Self: o.Self}, pl.Resources())
	if err != nil {
		return nil, err
	}
	e := &entry{m: m, state: status.Stopped, memory: pl.Bytes, baseURL: l.BaseURL, plan: pl, launch: l}
	e.alwaysOn = s.alwaysOnIn(cfg, m)
	so := o.Supervise
	so.Restart = e.alwaysOn
	so.Logger = o.Logger
	so.OnEvent = s.onProcEvent
	so.OnProgress = s.onProgress
	so.BeforeSpawn = s.beforeSpawn
	so.Docker, so.Root = o.Docker, cfg.Root
	so.Redact = config.Redactor(cfg)
	if so.Registry == nil {
		so.Registry = s.registry
	}
	nr := o.NewRunner
	if nr == nil {
		nr = NewProcess
	}
	p, err := nr(RunnerSpec{Config: cfg, Model: m, Launch: l, Plan: pl, Options: so})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	e.proc = p
	return e, nil
}

func (s *Scheduler) emit(ev status.Event) {
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

// Box is the machine the scheduler plans for.
func (s *Scheduler) Box() plan.Box {
	s.mu.Lock()
	defer s.mu.Unlock()
	return plan.Box{Facts: s.gpu, Total: s.total, Budget: s.budget}
}

// Config is the config the scheduler runs.
func (s *Scheduler) Config() *config.Config { return s.conf.Load() }

// Boot adopts the engines a previous gantry left running (see adopt), then
// starts every always-on model and every slot's default member in the
// background; failures are retried with backoff and show in Status.
func (s *Scheduler) Boot(ctx context.Context) {
	s.adopt()
	read, every := s.opts.MemInfo, s.opts.WatchEvery
	if read == nil {
		read = gpu.ReadMemInfo
	}
	if every <= 0 {
		every = time.Second
	}
	wctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.stopWatch = cancel
	s.mu.Unlock()
	go s.watchdog(wctx, read, every)
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
		return nil, s.unknown(name)
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

// unknown is the error for a name that is no model or alias here.
func (s *Scheduler) unknown(name string) error {
	return fmt.Errorf("%w: %s is not configured here%s; known models: %s", ErrUnknownModel, Quote(name), s.DidYouMean(name), s.KnownNames())
}

// DidYouMean is ", did you mean X?" for the known name (model, alias or
// preset) closest to name, "" when none is close.
func (s *Scheduler) DidYouMean(name string) string {
	if c := config.Closest(name, s.knownNames()); c != "" {
		return fmt.Sprintf(", did you mean %s?", Quote(c))
	}
	return ""
}

// Quote is a name as error messages show it: quoted, and cut to a sane
// length, since names in requests are the client's and may be anything.
func Quote(name string) string {
	if len(name) > 80 {
		name = name[:80] + "…"
	}
	return strconv.Quote(name)
}

func namesOrNone(names []string) string {
	if len(names) == 0 {
		return "none configured"
	}
	return strings.Join(names, ", ")
}

// KnownNames lists the model names and aliases a request may use.
func (s *Scheduler) KnownNames() string {
	names := s.knownNames()
	if len(names) == 0 {
		return "none configured"
	}
	return strings.Join(names, ", ")
}

// knownNames are the names a request may give: models, their aliases and
// the presets.
func (s *Scheduler) knownNames() []string {
	cfg := s.conf.Load()
	var names []string
	for _, n := range cfg.ModelNames() {
		names = append(names, n)
		names = append(names, cfg.Models[n].Aliases...)
	}
	return append(names, slices.Sorted(maps.Keys(cfg.Presets))...)
}

// Process returns the engine of a model (name or alias).
func (s *Scheduler) Process(name string) (Runner, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return e.proc, nil
}

// Close stops every engine (in parallel) and waits for them.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	models := s.models
	s.closed = true
	if s.stopWatch != nil {
		s.stopWatch()
	}
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

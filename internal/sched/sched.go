// Package sched decides which engines run: it owns one supervised process
// per configured model, starts always-on models, and answers what runs
// where. It is the one place that starts and stops engines.
package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/supervise"
)

// Scheduler runs the models of one config.
type Scheduler struct {
	cfg    *config.Config
	logger *slog.Logger
	budget int64 // bytes engines may reserve in all
	total  int64 // the GPU (or unified) memory the budget is taken from

	mu     sync.Mutex
	models map[string]*entry
	events func(supervise.Event)
	closed bool
}

// entry is one model's runtime record.
type entry struct {
	m        *config.Model
	proc     *supervise.Process
	inflight int
	queued   int
	lastUsed time.Time
}

// Options for New.
type Options struct {
	Logger *slog.Logger
	// Self is the gantry executable (for `gantry sim` models).
	Self string
	// OnEvent receives every engine state change.
	OnEvent func(supervise.Event)
	// Supervise tunes the processes (backoff, probes); Restart is set per
	// model from its mode.
	Supervise supervise.Options
	// MemoryTotal overrides memory.total: auto (tests).
	MemoryTotal int64
}

// ErrUnknownModel is returned for a name that is neither a model nor an alias.
var ErrUnknownModel = errors.New("unknown model")

// New prepares a scheduler for cfg; it starts nothing (see Boot).
func New(cfg *config.Config, o Options) (*Scheduler, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Self == "" {
		o.Self, _ = os.Executable()
	}
	total := int64(cfg.Memory.Total)
	if o.MemoryTotal > 0 {
		total = o.MemoryTotal
	}
	if total <= 0 {
		t, err := SystemMemory()
		if err != nil {
			return nil, fmt.Errorf("memory.total is auto but the machine's memory is unknown (%v): set memory.total", err)
		}
		total = t
	}
	s := &Scheduler{cfg: cfg, logger: o.Logger, total: total, budget: total - int64(cfg.Memory.Reserve),
		models: map[string]*entry{}, events: o.OnEvent}
	host := engine.Host{Config: cfg, Self: o.Self, MemoryTotal: total}
	for _, name := range cfg.ModelNames() {
		m := cfg.Models[name]
		l, err := engine.Build(m, host)
		if err != nil {
			return nil, err
		}
		so := o.Supervise
		so.Restart = m.AlwaysOn()
		so.Logger = o.Logger
		so.OnEvent = s.onEvent
		p, err := supervise.New(m, l, cfg.LogPath(m), so)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		s.models[name] = &entry{m: m, proc: p}
	}
	return s, nil
}

func (s *Scheduler) onEvent(ev supervise.Event) {
	if s.events != nil {
		s.events(ev)
	}
}

// Config is the config the scheduler runs.
func (s *Scheduler) Config() *config.Config { return s.cfg }

// Boot starts every always-on model in the background; failures are
// retried by the supervisor with backoff and show in Status.
func (s *Scheduler) Boot(ctx context.Context) {
	for _, name := range s.cfg.ModelNames() {
		e := s.models[name]
		if !e.m.AlwaysOn() {
			continue
		}
		go func() {
			if err := s.Start(ctx, name); err != nil && ctx.Err() == nil {
				s.logger.Warn("always-on model did not start", "model", name, "err", err)
			}
		}()
	}
}

func (s *Scheduler) lookup(name string) (*entry, error) {
	m := s.cfg.Resolve(name)
	if m == nil {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownModel, name, s.knownNames())
	}
	return s.models[m.Name], nil
}

func (s *Scheduler) knownNames() string {
	names := s.cfg.ModelNames()
	if len(names) == 0 {
		return "none configured"
	}
	return fmt.Sprint(names)
}

// Start starts a model (name or alias) and waits until it is ready.
func (s *Scheduler) Start(ctx context.Context, name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	return e.proc.Start(ctx)
}

// Begin starts a model (if it is not running) without waiting for it to be
// ready; the start goes on in the background and shows in Status.
func (s *Scheduler) Begin(name string) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Start launches before it waits; a done ctx only skips the wait
	if err := s.Start(ctx, name); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Stop stops a model and waits until its engine is gone.
func (s *Scheduler) Stop(ctx context.Context, name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	return e.proc.Stop(ctx)
}

// Process returns the supervised process of a model (name or alias).
func (s *Scheduler) Process(name string) (*supervise.Process, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return e.proc, nil
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
	Slot        string          `json:"slot,omitempty"`
	Aliases     []string        `json:"aliases,omitempty"`
	Runtime     string          `json:"runtime"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	ReadyAt     *time.Time      `json:"ready_at,omitempty"`
	LastLogLine string          `json:"last_log_line,omitempty"`
}

// MemoryStatus is the budget and what is reserved of it.
type MemoryStatus struct {
	TotalBytes    int64 `json:"total_bytes"`
	BudgetBytes   int64 `json:"budget_bytes"`
	ReservedBytes int64 `json:"reserved_bytes"`
}

// Status is the whole picture.
type Status struct {
	Models []ModelStatus `json:"models"`
	Memory MemoryStatus  `json:"memory"`
}

// Status returns every model's state, sorted by name.
func (s *Scheduler) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Models: []ModelStatus{}, Memory: MemoryStatus{TotalBytes: s.total, BudgetBytes: s.budget}}
	for _, name := range s.cfg.ModelNames() {
		e := s.models[name]
		ps := e.proc.Status()
		ms := ModelStatus{Name: name, Engine: e.m.Engine, State: ps.State, Reason: ps.Reason, Phase: ps.Phase,
			Detail: ps.Detail, Port: e.m.Port, PID: ps.PID, Starts: ps.Starts, MemoryBytes: int64(e.m.Memory),
			Inflight: e.inflight, Queued: e.queued, Mode: e.m.Mode, Slot: e.m.Slot, Aliases: e.m.Aliases,
			Runtime: e.m.Runtime, LastLogLine: ps.LastLine}
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
		if ps.State != supervise.Stopped {
			st.Memory.ReservedBytes += int64(e.m.Memory)
		}
		st.Models = append(st.Models, ms)
	}
	sort.Slice(st.Models, func(i, j int) bool { return st.Models[i].Name < st.Models[j].Name })
	return st
}

// Close stops every engine (in parallel) and waits for them.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, 0)
	var emu sync.Mutex
	for _, e := range s.models {
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

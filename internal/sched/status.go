package sched

import (
	"cmp"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/status"
)

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
	d, err := engine.Lookup(e.m.Engine)
	return err == nil && d.EmbeddingFlag != "" && slices.Contains(e.m.Args, d.EmbeddingFlag)
}

// SetGPUSource makes Status report live GPU telemetry from fn (a cached
// nvidia-smi query) instead of the facts read at start.
func (s *Scheduler) SetGPUSource(fn func() gpu.Facts) {
	s.mu.Lock()
	s.gpuNow = fn
	s.mu.Unlock()
}

// Status returns every model's state, sorted by name.
func (s *Scheduler) Status() status.Status {
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
	st := status.Status{Models: []status.ModelStatus{}, Slots: []status.SlotStatus{}, Profile: s.profile, GPU: g,
		Memory: status.MemoryStatus{TotalBytes: s.total, BudgetBytes: s.budget, ReservedBytes: s.reservedLocked()}}
	for _, name := range s.conf.Load().ModelNames() {
		e := s.models[name]
		ps := e.proc.Status()
		// The state the scheduler acts on; the engine's phase and detail live.
		ms := status.ModelStatus{Name: name, Engine: e.m.Engine, State: e.state, Reason: ps.Reason, Phase: ps.Phase,
			Detail: ps.Detail, Port: e.m.Port, PID: ps.PID, Starts: ps.Starts, MemoryBytes: e.memory,
			Inflight: e.inflight, Queued: e.queued, Mode: e.m.Mode, AlwaysOn: e.alwaysOn, Slot: e.m.Slot,
			Aliases: e.m.Aliases, Fallback: e.m.Fallback, Runtime: e.m.Runtime, LastLogLine: ps.LastLine,
			MemorySource: cmp.Or(e.memorySource, e.plan.Source), Findings: e.plan.Findings, Diagnosis: e.diagnosis,
			Adopted: ps.Adopted, MemoryFraction: e.plan.Fraction, KVCacheBytes: e.plan.KVCacheBytes, MaxTotalTokens: e.plan.MaxTotalTokens,
			Invalid: e.plan.Invalid(), Doors: doorsOf(s.conf.Load(), e.m)}
		if e.state == status.Stopped {
			// The engine's last probe ("ready") says nothing about a
			// model that is not running.
			ms.Phase, ms.Detail = "", ""
		}
		ms.Context = e.plan.Context
		if in := e.plan.Info; in != nil {
			ms.ModelType, ms.Params = in.ModelType, in.Params
			if in.Quant.Method != "" {
				ms.Quantization = in.Quant.String()
			}
		}
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
		if e.pageCache != nil {
			pc := *e.pageCache
			ms.PageCache = &pc
		}
		if ps.Step != nil && e.state == status.Starting {
			ms.Progress = s.progressLocked(name, *ps.Step, ps.StartedAt, time.Now())
		}
		if e.m.MultiNode() {
			ms.Nodes, ms.Rank = e.m.Nodes, e.m.Rank()
			if g, ok := e.proc.(RankReporter); ok {
				ms.Ranks = g.Ranks()
			}
		}
		st.Models = append(st.Models, ms)
	}
	for _, name := range slices.Sorted(maps.Keys(s.conf.Load().Slots)) {
		sl := s.conf.Load().Slots[name]
		ss := status.SlotStatus{Name: name, Port: sl.Port, Members: []string{}}
		if sl.Listen != "" {
			ss.URL = "http://" + advertised(sl.Listen) + "/v1"
		}
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

// Docker is the client of the docker-runtime models' daemon, nil when
// there is none.
func (s *Scheduler) Docker() *container.Client { return s.opts.Docker }

// StateOf is the state of a model (name or alias), cheaply, for routing;
// ok is false for a name the config does not know.
func (s *Scheduler) StateOf(name string) (state status.State, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookupLocked(name)
	if e == nil {
		return "", false
	}
	return e.state, true
}

// doorsOf lists the addresses clients reach m at, the most direct first:
// its own listen, its slot's, the gateway's, Ollama's API.
func doorsOf(cfg *config.Config, m *config.Model) []status.Door {
	var ds []status.Door
	add := func(kind, addr, path, model string) {
		if addr != "" {
			ds = append(ds, status.Door{Kind: kind, Address: addr, URL: "http://" + advertised(addr) + path, Model: model})
		}
	}
	add("model", m.Listen, "/v1", "")
	if sl := cfg.Slots[m.Slot]; sl != nil {
		add("slot", sl.Listen, "/v1", m.Name)
	}
	add("gateway", cfg.Listen, "/v1", m.Name)
	if cfg.OllamaAPI != nil {
		add("ollama", cfg.OllamaAPI.Listen, "", m.Name)
	}
	return ds
}

// hostName is the machine's name, for addresses that listen on every
// interface; "localhost" when it has none.
var hostName = sync.OnceValue(func() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
})

// advertised is a listen address as a client on the network dials it: a
// wildcard host (0.0.0.0, ::, none) becomes the machine's name.
func advertised(listen string) string {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = hostName()
	}
	return net.JoinHostPort(h, p)
}

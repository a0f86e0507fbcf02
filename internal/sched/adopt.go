package sched

import (
	"context"
	"time"
)

// adopt takes over the engines a previous gantry left running: each
// runner that can adopt looks up its own engine in the registry and takes
// it if it is the same launch and ready (its load is not thrown away);
// then every engine of ours that nobody took is stopped, so nothing is
// orphaned and no engine runs twice on one port.
func (s *Scheduler) adopt() {
	s.mu.Lock()
	var entries []*entry
	for _, name := range sortedNames(s.models) {
		entries = append(entries, s.models[name])
	}
	s.mu.Unlock()
	for _, e := range entries {
		a, ok := e.proc.(Adopter)
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := a.Adopt(ctx)
		cancel()
		if err != nil {
			s.logger.Debug("nothing adopted", "model", e.m.Name, "why", err)
			continue
		}
		s.mu.Lock()
		e.holds = true
		s.mu.Unlock()
		s.logger.Info("adopted a running engine", "model", e.m.Name, "pid", e.proc.Status().PID)
	}
	s.registry.Sweep(s.logger, 5*time.Second)
}

// Detach forgets every engine without stopping it: gantry exits and the
// next one adopts them (the registry keeps their records).
func (s *Scheduler) Detach() {
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

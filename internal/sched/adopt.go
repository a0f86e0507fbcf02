package sched

import (
	"context"
	"errors"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/supervise"
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
			if errors.Is(err, supervise.ErrNothingToAdopt) {
				s.logger.Debug("nothing adopted", "model", e.m.Name)
			} else {
				s.logger.Info("the previous gantry's engine is not adopted; it is stopped", "model", e.m.Name, "why", err)
			}
			continue
		}
		s.mu.Lock()
		e.holds = true
		s.mu.Unlock()
		s.logger.Info("adopted a running engine", "model", e.m.Name, "pid", e.proc.Status().PID)
	}
	s.registry.Sweep(s.logger, 5*time.Second)
	s.sweepContainers()
}

// usesDocker reports whether a model runs in a container.
func (s *Scheduler) usesDocker() bool {
	cfg := s.conf.Load()
	for _, n := range cfg.ModelNames() {
		if cfg.Models[n].Runtime == config.RuntimeDocker {
			return true
		}
	}
	return false
}

// sweepContainers removes the containers of this gantry's root that no
// model adopted: a crash's leftovers, or ones launched with a config that
// changed. No "No such container" at the next start, no port held.
func (s *Scheduler) sweepContainers() {
	if s.opts.Docker == nil {
		return
	}
	keep := map[string]bool{}
	s.mu.Lock()
	for _, e := range s.models {
		if c, ok := e.proc.(ContainerHolder); ok {
			if id := c.ContainerID(); id != "" {
				keep[id] = true
			}
		}
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	err := s.opts.Docker.Ping(pctx)
	pcancel()
	if err != nil {
		// No daemon, no containers to sweep; say so only if some model
		// needs one.
		if s.usesDocker() {
			s.logger.Warn("docker-runtime models cannot start until the daemon answers", "err", err)
		}
		return
	}
	gone, err := supervise.SweepContainers(ctx, s.opts.Docker, s.conf.Load().Root, keep)
	if err != nil {
		s.logger.Warn("leftover containers not removed", "err", err)
	}
	for _, name := range gone {
		s.logger.Info("removed a leftover container of a previous gantry", "container", name)
	}
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
		if d, ok := e.proc.(Detacher); ok {
			d.Detach()
		}
	}
}

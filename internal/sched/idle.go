package sched

import (
	"context"
	"time"

	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

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
	s.emit(Event{Kind: status.KindIdle, Model: e.m.Name, Reason: "no requests for " + e.m.IdleTimeout.String()})
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

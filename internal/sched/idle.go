package sched

import (
	"context"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// armIdleLocked starts the idle timer of an on-demand model that is ready
// and has nothing in flight or waiting.
func (e *entry) armIdleLocked(s *Scheduler) {
	if e.alwaysOn || e.m.Follower() || e.inflight > 0 || e.queued > 0 || e.state != status.Ready || e.m.IdleTimeout <= 0 ||
		s.restingDefault(e) {
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
	if e.alwaysOn || e.inflight > 0 || e.queued > 0 || e.evicting || e.draining || e.state != status.Ready ||
		time.Since(e.lastUsed) < e.m.IdleTimeout.D() && !e.lastUsed.IsZero() {
		s.mu.Unlock()
		return
	}
	e.evicting = true
	s.broadcastLocked()
	s.mu.Unlock()
	s.logger.Info("idle timeout: stopping", "model", e.m.Name, "idle_timeout", e.m.IdleTimeout)
	s.emit(status.Event{Kind: status.KindIdle, Model: e.m.Name, Reason: "no requests for " + e.m.IdleTimeout.String()})
	e.proc.Stop(context.Background()) //nolint:errcheck // the runner reports a failed stop as its own event
	s.mu.Lock()
	e.evicting = false
	s.broadcastLocked()
	s.mu.Unlock()
	s.restoreDefault(e)
}

// restingDefault reports whether e is its slot's default member that
// comes back when another member idles out: it is the slot's resting
// state, so it does not idle out itself.
func (s *Scheduler) restingDefault(e *entry) bool {
	if e.m.Slot == "" {
		return false
	}
	cfg := s.conf.Load()
	sl := cfg.Slots[e.m.Slot]
	return sl != nil && sl.Restores() && cfg.Resolve(sl.Default) == e.m
}

// restoreDefault starts the slot's default member again after gone, a
// member of the slot, idled out: after default_after, if the slot is still
// empty then.
func (s *Scheduler) restoreDefault(gone *entry) {
	slot := gone.m.Slot
	cfg := s.conf.Load()
	sl := cfg.Slots[slot]
	if slot == "" || sl == nil || !sl.Restores() {
		return
	}
	def := cfg.Resolve(sl.Default)
	if def == nil || def.Name == gone.m.Name {
		return
	}
	time.AfterFunc(sl.DefaultAfter.D(), func() {
		s.mu.Lock()
		busy := s.closed || s.switching[slot] != nil
		for _, o := range s.models {
			if o.m.Slot == slot && (o.holds || o.state != status.Stopped) {
				busy = true
			}
		}
		s.mu.Unlock()
		if busy {
			return // a request took the slot meanwhile, or gantry stops
		}
		s.logger.Info("slot's default comes back", "slot", slot, "default", def.Name, "after", gone.m.Name)
		s.emit(status.Event{Kind: status.KindDefault, Model: def.Name, From: gone.m.Name, To: def.Name,
			Reason: "slot " + slot + ": " + gone.m.Name + " idled out"})
		if err := s.Start(context.Background(), def.Name); err != nil {
			s.logger.Warn("the slot's default did not start", "slot", slot, "model", def.Name, "err", err)
		}
	})
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

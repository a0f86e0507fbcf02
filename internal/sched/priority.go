package sched

import (
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// Priority is how a request waits: interactive requests (a person at a
// chat) go before batch ones (an agent, an indexer) wherever requests
// wait — for a load, a slot's switch, a model's max_concurrency — and a
// batch request never switches a slot away from, nor evicts, a model an
// interactive request used within its protection window (protectedFor).
type Priority uint8

// The priorities; Interactive is the zero value (and every request's that
// says nothing).
const (
	Interactive Priority = iota
	Batch
)

func (p Priority) String() string {
	if p == Batch {
		return "batch"
	}
	return "interactive"
}

// protection is how long a model stays out of batch requests' reach after
// an interactive request used it: its slot's min_residency for a slot
// member, else its idle_timeout (0: no protection).
func (s *Scheduler) protection(e *entry) time.Duration {
	if e.m.Slot != "" {
		if sl := s.conf.Load().Slots[e.m.Slot]; sl != nil {
			return sl.MinResidency.D()
		}
	}
	return e.m.IdleTimeout.D()
}

// protectedLocked is how much longer e is protected from batch requests
// at now (0: not protected): an interactive request used it, or waits for
// it, within its protection window.
func (s *Scheduler) protectedLocked(e *entry, now time.Time) time.Duration {
	w := s.protection(e)
	if w <= 0 {
		return 0
	}
	if e.queuedInteractive > 0 || e.inflightInteractive > 0 {
		return w // in use now: look again when that changes, or in w
	}
	if e.interactiveAt.IsZero() {
		return 0
	}
	return max(0, w-now.Sub(e.interactiveAt))
}

// batchYieldsLocked says whether a batch request for e must leave the
// slot alone for now, and for how long at most: the slot's member (or one
// being loaded) is protected, or an interactive request waits for another
// member of the slot.
func (s *Scheduler) batchYieldsLocked(e *entry, now time.Time) (wait time.Duration, yield bool) {
	for _, o := range s.models {
		if o == e || o.m.Slot != e.m.Slot {
			continue
		}
		if o.queuedInteractive > 0 {
			return 0, true // until it has the slot (a change wakes us)
		}
		if o.holds || o.state != status.Stopped {
			if left := s.protectedLocked(o, now); left > 0 {
				return left, true
			}
		}
	}
	return 0, false
}

// admitsLocked reports whether a request of priority p may have one of
// e's places now: e has no max_concurrency, or a place is free and no
// interactive request waits before a batch one.
func (e *entry) admitsLocked(p Priority) bool {
	max := e.m.MaxConcurrency
	if max <= 0 {
		return true
	}
	if e.inflight >= max {
		return false
	}
	return p == Interactive || e.queuedInteractive == 0
}

// fastLocked reports whether a request may take e on the fast path: ready
// and nobody waiting for one of its places first.
func (e *entry) fastLocked() bool {
	return e.state == status.Ready && !e.draining && !e.evicting && !e.m.Follower() &&
		(e.m.MaxConcurrency <= 0 || e.inflight < e.m.MaxConcurrency && e.queued == 0)
}

package sched

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// takeSlotLocked makes e the slot's member: when another member holds the
// slot it drains and stops that one (switched = true, look again). A batch
// request first waits while the slot is in interactive use
// (batchYieldsLocked), and gives the slot up again if that starts while
// it waits for the member's residency.
func (s *Scheduler) takeSlotLocked(ctx context.Context, e *entry, p Priority) (switched bool, err error) {
	slot := e.m.Slot
	if t := s.switching[slot]; t != nil && t != e {
		return true, s.waitLocked(ctx, 0) // another switch first
	}
	if p == Batch {
		if wait, yield := s.batchYieldsLocked(e, time.Now()); yield {
			return true, s.waitLocked(ctx, wait)
		}
	}
	var occ *entry
	for _, o := range s.models {
		if o != e && o.m.Slot == slot && (o.holds || o.state != status.Stopped) {
			occ = o
		}
	}
	if occ == nil {
		s.switching[slot] = e // hold the slot until e has its memory
		return false, nil
	}
	s.switching[slot] = e
	s.emit(status.Event{Kind: status.KindSwitch, Model: slot, From: occ.m.Name, To: e.m.Name, Reason: "requested"})
	s.logger.Info("switching slot", "slot", slot, "from", occ.m.Name, "to", e.m.Name)
	// The switch goes on even if this caller gives up: a half-drained
	// member helps nobody.
	if !s.residencyLocked(occ, s.conf.Load().Slots[slot].MinResidency.D(), e, p) {
		delete(s.switching, slot) // an interactive request came: it goes first
		s.broadcastLocked()
		return true, ctx.Err()
	}
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

// switchIdleGrace is how long a slot member must have been idle to give
// way to another member before its min_residency is up: one user trying
// one model and then another waits for nothing, while members that
// clients keep asking for in turn still keep the slot for min_residency.
const switchIdleGrace = 3 * time.Second

// residencyLocked waits, with s.mu released while waiting, until occ may
// give up the slot: a load under way that someone waits for is finished
// first; a member in use keeps the slot for minResidency from its
// readiness, unless it has been idle (nothing in flight or waiting) for
// switchIdleGrace. Meanwhile occ serves as usual. For a batch request
// (for e) it answers false as soon as the slot comes into interactive use:
// the switch is given up.
func (s *Scheduler) residencyLocked(occ *entry, minResidency time.Duration, e *entry, p Priority) bool {
	bg := context.Background()
	for {
		if p == Batch {
			if _, yield := s.batchYieldsLocked(e, time.Now()); yield {
				return false
			}
		}
		// Someone waits for this load (admitted, maybe not yet launched):
		// let it finish, or it is wasted.
		if occ.holds && occ.queued > 0 && (occ.state == status.Starting || occ.state == status.Stopped) {
			s.waitLocked(bg, 0) //nolint:errcheck // bg: a wait that only ends by a change
			continue
		}
		wait, ok := residencyLeft(occ.state == status.Ready, occ.inflight+occ.queued > 0, occ.readyAt, occ.lastUsed, time.Now(), minResidency)
		if ok {
			return true
		}
		s.waitLocked(bg, wait) //nolint:errcheck // bg: a wait that only ends by a change or its deadline
	}
}

// residencyLeft decides whether a ready slot member may give way now; if
// not, wait says how long until it may at the earliest (a request that
// arrives or ends meanwhile wakes the waiter sooner).
func residencyLeft(ready, busy bool, readyAt, lastUsed, now time.Time, minResidency time.Duration) (wait time.Duration, ok bool) {
	if !ready {
		return 0, true
	}
	left := minResidency - now.Sub(readyAt)
	if left <= 0 {
		return 0, true
	}
	if busy {
		return left, false
	}
	if !lastUsed.After(readyAt) {
		return 0, true // never used since it became ready
	}
	idleLeft := switchIdleGrace - now.Sub(lastUsed)
	if idleLeft <= 0 {
		return 0, true
	}
	return min(left, idleLeft), false
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
		s.waitLocked(bg, left) //nolint:errcheck // bg: a wait that only ends by a change or its deadline
	}
}

func (s *Scheduler) releaseSlotLocked(e *entry) {
	if e.m.Slot != "" && s.switching[e.m.Slot] == e {
		delete(s.switching, e.m.Slot)
		s.broadcastLocked()
	}
}

// Switch makes model the running member of slot and waits until it is ready.
func (s *Scheduler) Switch(ctx context.Context, slot, model string) error {
	if _, ok := s.conf.Load().Slots[slot]; !ok {
		return fmt.Errorf("%w %s (slots: %s)", ErrUnknownSlot, Quote(slot), namesOrNone(slices.Sorted(maps.Keys(s.conf.Load().Slots))))
	}
	e, err := s.lookup(model)
	if err != nil {
		return err
	}
	if e.m.Slot != slot {
		var members []string
		for _, n := range s.conf.Load().ModelNames() {
			if s.conf.Load().Models[n].Slot == slot {
				members = append(members, n)
			}
		}
		return fmt.Errorf("%w: %s is not a member of slot %s (its members: %s)", ErrNotSlotMember, e.m.Name, slot, namesOrNone(members))
	}
	return s.Start(ctx, e.m.Name)
}

// SlotTarget is the member a request to the slot's own address goes to
// when it names no member: the one being switched to, else the one
// holding the slot, else the slot's default, else its first member by name.
func (s *Scheduler) SlotTarget(slot string) string {
	cfg := s.conf.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.switching[slot]; e != nil {
		return e.m.Name
	}
	first := ""
	for _, name := range cfg.ModelNames() {
		e := s.models[name]
		if e == nil || e.m.Slot != slot {
			continue
		}
		if e.holds && !e.draining {
			return name
		}
		if first == "" {
			first = name
		}
	}
	if sl := cfg.Slots[slot]; sl != nil {
		if m := cfg.Resolve(sl.Default); m != nil {
			return m.Name
		}
	}
	return first
}

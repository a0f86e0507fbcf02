package sched

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// Holder is a model that holds memory, as the victim choice sees it.
type Holder struct {
	Name     string
	Bytes    int64
	LastUsed time.Time
	// Evictable: on-demand, idle, not mid-start; it may be stopped.
	Evictable bool
	// Stopping: a stop is under way; its memory comes free by itself.
	Stopping bool
}

// ChooseVictims decides what to stop so that need bytes fit in the
// budget when free bytes are free now: the memory of models already
// stopping counts first, then idle evictable models are taken least
// recently used first, only as many as needed. ok is false when even
// stopping every evictable model would not make room (then nothing is to
// be stopped).
func ChooseVictims(need, free int64, holders []Holder) (victims []string, ok bool) {
	gain := int64(0)
	var idle []Holder
	for _, h := range holders {
		switch {
		case h.Stopping:
			gain += h.Bytes
		case h.Evictable:
			idle = append(idle, h)
		}
	}
	sort.SliceStable(idle, func(i, j int) bool { return idle[i].LastUsed.Before(idle[j].LastUsed) })
	for _, h := range idle {
		if free+gain >= need {
			break
		}
		victims = append(victims, h.Name)
		gain += h.Bytes
	}
	if free+gain < need {
		return nil, false
	}
	return victims, true
}

// admitLocked reserves e's memory. When it does not fit it picks idle
// on-demand models to evict (ChooseVictims), stops them and answers
// ok = false (look again). When even evicting every idle model would not
// make room it answers ErrInsufficientMemory naming the holders. A batch
// request evicts no model in interactive use (protectedLocked): when only
// those would make room, it waits for them to leave it.
func (s *Scheduler) admitLocked(ctx context.Context, e *entry, p Priority) (bool, error) {
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
	var holders []Holder
	now := time.Now()
	var protected time.Duration // the soonest a protected victim is free
	for _, name := range sortedNames(s.models) {
		o := s.models[name]
		if !o.holds || o == e {
			continue
		}
		holders = append(holders, Holder{Name: name, Bytes: o.memory, LastUsed: o.lastUsed,
			Stopping:  o.evicting || o.state == status.Stopping,
			Evictable: o.evictable()})
		if left := s.protectedLocked(o, now); p == Batch && o.evictable() && left > 0 {
			holders[len(holders)-1].Evictable = false
			if protected == 0 || left < protected {
				protected = left
			}
		}
	}
	names, ok := ChooseVictims(e.memory, free, holders)
	if !ok && protected > 0 {
		for i := range holders {
			holders[i].Evictable = s.models[holders[i].Name].evictable()
		}
		if _, fits := ChooseVictims(e.memory, free, holders); fits {
			return false, s.waitLocked(ctx, protected) // batch: until the interactive use ends
		}
	}
	if !ok {
		return false, fmt.Errorf("%w: %s needs %s but only %s of the %s budget is free; held by %s",
			ErrInsufficientMemory, e.m.Name, config.FormatBytes(e.memory), config.FormatBytes(max(free, 0)),
			config.FormatBytes(s.budget), s.holdersLocked(e))
	}
	if len(names) == 0 {
		return false, s.waitLocked(ctx, 0) // stops already under way will make room
	}
	victims := make([]*entry, len(names))
	for i, n := range names {
		victims[i] = s.models[n]
		victims[i].evicting = true
		victims[i].stopIdleLocked()
	}
	s.broadcastLocked()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, v := range victims {
		s.logger.Info("evicting idle model to make room", "model", v.m.Name, "for", e.m.Name)
		s.emit(status.Event{Kind: status.KindEviction, Model: v.m.Name, Reason: "make room for " + e.m.Name})
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.proc.Stop(context.Background()) //nolint:errcheck // the runner reports a failed stop as its own event
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
		(e.state == status.Ready || e.state == status.Failed || e.state == status.Stopped)
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
		case o.state == status.Starting:
			why = "starting"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", o.m.Name, config.FormatBytes(o.memory), why))
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, ", ")
}

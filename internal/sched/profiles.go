package sched

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// alwaysOnIn reports whether m is always-on in cfg by its mode or the
// active profile.
func (s *Scheduler) alwaysOnIn(cfg *config.Config, m *config.Model) bool {
	if m.Follower() {
		return false // the leader decides when its group runs
	}
	if m.AlwaysOn() {
		return true
	}
	if p := cfg.Profiles[s.profile]; p != nil {
		for _, n := range p.AlwaysOn {
			if r := cfg.Resolve(n); r != nil && r.Name == m.Name {
				return true
			}
		}
	}
	return false
}

// Profile returns the active profile ("" when none).
func (s *Scheduler) Profile() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profile
}

// SetProfile makes name the active profile ("" for none): models it lists
// become always-on and are started; models that were always-on only by the
// old profile become on-demand and are stopped when idle. The choice is
// saved and survives a restart of gantry.
func (s *Scheduler) SetProfile(ctx context.Context, name string) error {
	if _, ok := s.conf.Load().Profiles[name]; !ok && name != "" {
		return fmt.Errorf("%w %s (profiles: %s)", ErrUnknownProfile, Quote(name), namesOrNone(slices.Sorted(maps.Keys(s.conf.Load().Profiles))))
	}
	s.mu.Lock()
	old := s.profile
	s.profile = name
	var start, stop []string
	for _, n := range s.conf.Load().ModelNames() {
		e := s.models[n]
		was := e.alwaysOn
		e.alwaysOn = s.alwaysOnIn(s.conf.Load(), e.m)
		e.proc.SetRestart(e.alwaysOn)
		switch {
		case e.alwaysOn && !was:
			e.stopIdleLocked()
			start = append(start, n)
		case !e.alwaysOn && was:
			if e.inflight == 0 && e.queued == 0 {
				stop = append(stop, n)
			} else {
				e.armIdleLocked(s)
			}
		}
	}
	s.broadcastLocked()
	saved := s.persistedLocked()
	s.mu.Unlock()
	s.save(saved)
	s.emit(status.Event{Kind: status.KindProfile, From: old, To: name})
	var errs []error
	for _, n := range stop {
		if err := s.Stop(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range start {
		if err := s.Begin(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

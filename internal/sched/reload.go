package sched

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/status"
)

// Changes lists what a Reload did.
type Changes struct {
	Restarted []string `json:"restarted"`
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Kept      []string `json:"kept"`
}

// Reload applies a new, validated config, all or nothing: every new or
// changed model's entry is built first, and only when all of them are
// does anything stop. Models whose engine launch or settings changed are
// then stopped (the old engine drained by its stop) and come back on
// demand — at once when always-on; removed ones are stopped; unchanged
// ones keep running untouched. On an error the running config stays as it
// was and nothing built for the new one is left behind. The listen
// address and memory total are the daemon's and the box's: they are not
// changed here.
func (s *Scheduler) Reload(ctx context.Context, cfg *config.Config) (Changes, error) {
	var ch Changes
	total := s.total
	if t := int64(cfg.Memory.Total); t > 0 {
		total = t
	}
	budget := total - int64(cfg.Memory.Reserve)
	facts := s.gpu
	facts.Unified = cfg.Memory.UnifiedOn(s.detectedUnified)
	plans := plan.Make(cfg, plan.Box{Facts: facts, Total: total, Budget: budget}, s.opts.Inspect)
	if missing := plan.Unreserved(cfg, plans); len(missing) > 0 {
		return ch, missing
	}
	s.logInvalid(cfg, plans)
	s.mu.Lock()
	old := s.models
	s.mu.Unlock()
	next := map[string]*entry{}
	var retire []*entry
	for _, name := range cfg.ModelNames() {
		m, pl := cfg.Models[name], plans[name]
		l, err := launch.Build(m, launch.Host{Config: cfg, Self: s.opts.Self}, pl.Resources())
		if err != nil {
			return Changes{}, err
		}
		if oe := old[name]; oe != nil {
			if reflect.DeepEqual(*oe.m, *m) && reflect.DeepEqual(oe.launch, l) && oe.plan.Bytes == pl.Bytes {
				next[name] = oe
				ch.Kept = append(ch.Kept, name)
				continue
			}
			retire = append(retire, oe)
			ch.Restarted = append(ch.Restarted, name)
		} else {
			ch.Added = append(ch.Added, name)
		}
	}
	for _, name := range sortedNames(old) {
		if _, ok := cfg.Models[name]; !ok {
			retire = append(retire, old[name])
			ch.Removed = append(ch.Removed, name)
		}
	}
	built, err := s.newEntries(cfg, plans, append(slices.Clone(ch.Restarted), ch.Added...))
	if err != nil {
		return Changes{}, err // the old config's models all still run
	}
	maps.Copy(next, built)
	// Stop what goes before its successor starts: memory and ports are free.
	s.mu.Lock()
	for _, e := range retire {
		e.evicting = true
		e.stopIdleLocked()
	}
	s.broadcastLocked()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range retire {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.proc.Close(ctx) //nolint:errcheck // ends with the group gone
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.models = next
	s.plans = plans
	s.total, s.budget = total, budget
	s.gpu.Unified = facts.Unified
	s.conf.Store(cfg)
	var start []string
	for _, name := range cfg.ModelNames() {
		e := next[name]
		was := e.alwaysOn
		e.alwaysOn = s.alwaysOnIn(cfg, e.m)
		e.proc.SetRestart(e.alwaysOn)
		if e.alwaysOn && (!was || e.state == status.Stopped) {
			start = append(start, name)
		}
	}
	s.broadcastLocked()
	s.mu.Unlock()
	for _, n := range start {
		s.Begin(n) //nolint:errcheck // failures show in Status
	}
	s.emit(status.Event{Kind: status.KindReload, Reason: fmt.Sprintf("restarted %v, added %v, removed %v", ch.Restarted, ch.Added, ch.Removed)})
	return ch, nil
}

func sortedNames[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

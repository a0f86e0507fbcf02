package sched

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/pagecache"
	"github.com/gantryhq/gantry/internal/progress"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// On a unified-memory box (DGX Spark) the engines, the OS and the page
// cache share one pool, and the engines were written for discrete GPUs.
// This file holds what the scheduler does about it: the page cache before
// a start, memory.total from what CUDA can get, and the watchdog.

// ownedGPUBytes is the GPU memory gantry's own engines hold (those the
// registry lists, which gantry adopts or stops): nvidia-smi's processes in
// their process groups. On unified memory it is what gantry could give
// back, so memory.total: auto counts it as available.
func ownedGPUBytes(procs []gpu.Proc, registry *supervise.Registry, pgrp func(pid int) int) int64 {
	leaders := map[int]bool{}
	for _, r := range registry.Records() {
		if r.PID > 0 {
			leaders[r.PID] = true
		}
	}
	var ours int64
	for _, p := range procs {
		if p.Used != nil && (leaders[p.PID] || leaders[pgrp(p.PID)]) {
			ours += *p.Used
		}
	}
	return ours
}

// unified reports whether the box's memory is shared (memory.unified, or
// what nvidia-smi said).
func (s *Scheduler) unified() bool {
	return s.conf.Load().Memory.UnifiedOn(s.detectedUnified)
}

// beforeSpawn runs before an engine launches (supervise.Options.BeforeSpawn):
// on unified memory it drops the model's checkpoint pages from the page
// cache — and, with memory.drop_caches and root, every clean cache — and
// says what that freed, in the model's log and as a memory event.
func (s *Scheduler) beforeSpawn(_ context.Context, m *config.Model, phase func(string)) string {
	if !s.unified() {
		return ""
	}
	phase(progress.PageCache)
	cfg := s.conf.Load()
	var notes []string
	if cfg.Memory.DropCaches {
		if err := pagecache.DropAll(); err != nil {
			notes = append(notes, "memory.drop_caches: "+err.Error())
		} else {
			notes = append(notes, "dropped all clean caches (memory.drop_caches)")
		}
	}
	s.mu.Lock()
	if e := s.models[m.Name]; e != nil {
		e.pageCache = nil // this start's figures replace the last one's
	}
	s.mu.Unlock()
	files := s.checkpointFiles(m)
	if len(files) == 0 {
		return s.memoryNote(m.Name, notes, 0)
	}
	freed, stayed, err := dropPages(files)
	if err != nil {
		notes = append(notes, "could not drop all of the checkpoint's pages: "+err.Error())
	}
	notes = append(notes, fmt.Sprintf("freed %s of %s's checkpoint from the page cache (%s of it was cached, %s stays)",
		config.FormatBytes(freed), m.Name, config.FormatBytes(freed+stayed), config.FormatBytes(stayed)))
	s.mu.Lock()
	if e := s.models[m.Name]; e != nil {
		e.pageCache = &status.PageCache{FreedBeforeStartBytes: freed, StayedBeforeStartBytes: stayed}
	}
	s.mu.Unlock()
	return s.memoryNote(m.Name, notes, freed)
}

// checkpointFiles are the weight files of a model's checkpoint, none when
// it has no path here.
func (s *Scheduler) checkpointFiles(m *config.Model) []string {
	path := s.conf.Load().ModelPath(m)
	if path == "" {
		return nil
	}
	files, err := pagecache.Files(path)
	if err != nil {
		return nil
	}
	return files
}

// dropPages drops the files' pages from the page cache (dirty ones
// written back first) and says what that freed and what stayed, as
// mincore counts them.
func dropPages(files []string) (freed, stayed int64, err error) {
	before, _ := pagecache.Resident(files)
	err = pagecache.Evict(files)
	stayed, _ = pagecache.Resident(files)
	return max(before-stayed, 0), stayed, err
}

// afterLoad runs once an engine gantry launched is ready, on unified
// memory. The engine read its checkpoint through the page cache and copied
// the weights into memory that is, on a Spark, the same memory: they sat
// there twice until the kernel got round to it (SGLang has
// --weight-loader-drop-cache-after-load for this; vLLM, TensorRT-LLM and
// llama.cpp without mmap leave it). The checkpoint's pages are dropped
// again, and what that freed is recorded with the load: in the model's
// status, its log and a memory event. Pages the engine keeps mapped
// (llama.cpp's mmap, which is its weights) stay, and are reported so.
func (s *Scheduler) afterLoad(name string) {
	if !s.unified() {
		return
	}
	s.mu.Lock()
	e := s.models[name]
	var m *config.Model
	if e != nil {
		m = e.m
	}
	s.mu.Unlock()
	if m == nil {
		return
	}
	files := s.checkpointFiles(m)
	if len(files) == 0 {
		return
	}
	freed, stayed, err := dropPages(files)
	note := fmt.Sprintf("after the load: freed %s of %s's checkpoint from the page cache, read again by the engine (%s stays",
		config.FormatBytes(freed), name, config.FormatBytes(stayed))
	if stayed > 0 {
		note += ": pages the engine keeps mapped stay"
	}
	note += ")"
	if err != nil {
		note += "; could not drop all of them: " + err.Error()
	}
	s.mu.Lock()
	if e.pageCache == nil {
		e.pageCache = &status.PageCache{}
	}
	e.pageCache.AfterLoad, e.pageCache.FreedAfterLoadBytes, e.pageCache.StayedAfterLoadBytes = true, freed, stayed
	s.broadcastLocked()
	s.mu.Unlock()
	if lg := e.proc.Log(); lg != nil {
		lg.Mark("unified memory: %s", note)
	}
	s.memoryNote(name, []string{note}, freed)
}

func (s *Scheduler) memoryNote(model string, notes []string, freed int64) string {
	if len(notes) == 0 {
		return ""
	}
	note := "unified memory: " + strings.Join(notes, "; ")
	s.emit(status.Event{Kind: status.KindMemory, Model: model, Reason: note, FreedBytes: freed})
	return note
}

// watchdog watches MemAvailable on unified memory every interval: below
// memory.watchdog while an engine loads, the newest load is stopped
// (before the kernel's OOM killer picks a victim, or the box freezes),
// with a memory event and a diagnosis.
func (s *Scheduler) watchdog(ctx context.Context, read func() (gpu.MemInfo, error), interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var warned, acted time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		floor := int64(s.conf.Load().Memory.Watchdog)
		if floor <= 0 || !s.unified() {
			continue
		}
		mi, err := read()
		if err != nil || mi.Available >= floor || time.Since(acted) < 10*interval {
			// After a stop, the kernel takes a moment to get the memory
			// back: one load is stopped at a time.
			continue
		}
		victim := s.newestLoad()
		why := fmt.Sprintf("MemAvailable fell to %s, below memory.watchdog %s", config.FormatBytes(mi.Available), config.FormatBytes(floor))
		if victim == nil {
			if time.Since(warned) > time.Minute { // a running box low on memory: say so, once a minute
				warned = time.Now()
				s.emit(status.Event{Kind: status.KindMemory, Reason: why + "; no engine is loading, nothing stopped"})
			}
			continue
		}
		acted = time.Now()
		s.logger.Warn("memory watchdog: stopping the newest load", "model", victim.m.Name, "available", mi.Available, "floor", floor)
		s.emit(status.Event{Kind: status.KindMemory, Model: victim.m.Name, Reason: why + "; stopping its load"})
		diag := fmt.Sprintf("stopped by gantry's memory watchdog: %s while it loaded — free memory (stop another model, lower memory: or context:), or lower memory.watchdog", why)
		s.Stop(context.Background(), victim.m.Name) //nolint:errcheck // the stop ends with the group gone either way
		s.mu.Lock()
		victim.diagnosis = diag
		s.broadcastLocked()
		s.mu.Unlock()
	}
}

// newestLoad is the engine that began loading last, nil when none loads.
func (s *Scheduler) newestLoad() *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var loading []*entry
	for _, e := range s.models {
		if e.state == status.Starting && !e.evicting {
			loading = append(loading, e)
		}
	}
	if len(loading) == 0 {
		return nil
	}
	return slices.MaxFunc(loading, func(a, b *entry) int {
		return a.proc.Status().StartedAt.Compare(b.proc.Status().StartedAt)
	})
}

package supervise

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/status"
)

// ErrNothingToAdopt says the previous gantry left no living engine for
// this model.
var ErrNothingToAdopt = errors.New("no engine left to adopt")

// Adopt takes over the engine a previous gantry started for this model,
// found by the identity in the registry (the token in its environment,
// its start time), not by its command line. It adopts only an engine
// launched as the config would launch it now. One that answers as ready
// is watched like one gantry started (exit, health) and stopped the same
// way, so a long load is not thrown away by a gantry restart; one still
// loading is adopted as starting and awaited until the start_timeout of
// its own start. Any other answer leaves the engine to Registry.Sweep.
func (p *Process) Adopt(ctx context.Context) error {
	var r *run
	var what string
	var started time.Time
	var rec Record
	if p.launch.Container != nil {
		f, err := p.adoptContainer(ctx)
		if err != nil {
			return err
		}
		r = &run{ctr: f.ID, exited: make(chan struct{}), cancel: func() {}}
		what, started = "container "+shortID(f.ID), f.Started
	} else {
		var ok bool
		rec, ok = p.opts.Registry.previous(p.opts.Key)
		if !ok {
			return ErrNothingToAdopt
		}
		pid := Locate(rec)
		switch {
		case pid == 0:
			return ErrNothingToAdopt
		case rec.Spec != p.spec:
			return fmt.Errorf("the engine (pid %d) was launched with another config", pid)
		}
		rec.PID = pid
		r = &run{pgid: pid, token: rec.Token, exited: make(chan struct{}), cancel: func() {}}
		what, started = fmt.Sprintf("pid %d", pid), rec.Started
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	rd := engine.Probe(pctx, p.client, p.launch.BaseURL, p.health)
	cancel()
	deadline := started.Add(p.model.StartTimeout.D())
	if !rd.Ready && !time.Now().Before(deadline) {
		return fmt.Errorf("the engine (%s) is not ready after its start_timeout: %s %s", what, rd.Phase, rd.Detail)
	}
	p.mu.Lock()
	if p.state != status.Stopped || p.closed {
		p.mu.Unlock()
		return fmt.Errorf("%s is %s", p.model.Name, p.state)
	}
	if r.ctr != "" {
		p.watchContainer(r, time.Now()) // its earlier output is in the log already
	} else {
		p.opts.Registry.claim(p.opts.Key, rec)
		pid := r.pgid
		go func() { // not our child: watch it by its pid
			waitExit(pid)
			r.exitErr = errors.New("exited (adopted; its exit status is not known)")
			close(r.exited)
		}()
	}
	p.cur, p.pid, p.adopted = r, r.pgid, true
	p.startedAt = started
	var ev *Event
	if rd.Ready {
		p.readyAt = time.Now()
		p.phase, p.detail = "ready", ""
		ev = p.setState(status.Ready, fmt.Sprintf("adopted running engine (%s) from a previous gantry", what))
		go p.watch(r)
	} else {
		// Still loading: wait for it as for a start of our own.
		sctx, cancel := context.WithDeadline(context.Background(), deadline)
		r.cancel = cancel
		p.phase, p.detail = rd.Phase, rd.Detail
		done := p.attempt.Begin()
		ev = p.setState(status.Starting, fmt.Sprintf("adopted loading engine (%s) from a previous gantry", what))
		go p.startRun(sctx, r, done, true)
	}
	p.mu.Unlock()
	p.log.Mark("adopted %s from a previous gantry", what)
	p.emit(ev)
	return nil
}

package supervise

import (
	"context"
	"errors"
	"fmt"
	"time"
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
	rec, ok := p.opts.Registry.previous(p.opts.Key)
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
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	rd := p.probe.Probe(pctx, p.client, p.launch.BaseURL, p.model)
	cancel()
	deadline := rec.Started.Add(p.model.StartTimeout.D())
	if !rd.Ready && !time.Now().Before(deadline) {
		return fmt.Errorf("the engine (pid %d) is not ready after its start_timeout: %s %s", pid, rd.Phase, rd.Detail)
	}
	p.mu.Lock()
	if p.state != Stopped || p.closed {
		p.mu.Unlock()
		return fmt.Errorf("%s is %s", p.model.Name, p.state)
	}
	rec.PID = pid
	p.opts.Registry.claim(p.opts.Key, rec)
	r := &run{pgid: pid, token: rec.Token, exited: make(chan struct{}), cancel: func() {}}
	p.cur, p.pid, p.adopted = r, pid, true
	p.startedAt = rec.Started
	go func() { // not our child: watch it by its pid
		waitExit(pid)
		r.exitErr = errors.New("exited (adopted; its exit status is not known)")
		close(r.exited)
	}()
	var ev *Event
	if rd.Ready {
		p.readyAt = time.Now()
		p.phase, p.detail = "ready", ""
		ev = p.setState(Ready, fmt.Sprintf("adopted running engine (pid %d) from a previous gantry", pid))
		go p.watch(r)
	} else {
		// Still loading: wait for it as for a start of our own.
		sctx, cancel := context.WithDeadline(context.Background(), deadline)
		r.cancel = cancel
		p.phase, p.detail = rd.Phase, rd.Detail
		p.startDone, p.startErr = make(chan struct{}), nil
		ev = p.setState(Starting, fmt.Sprintf("adopted loading engine (pid %d) from a previous gantry", pid))
		go p.startRun(sctx, r, p.startDone, true)
	}
	p.mu.Unlock()
	p.log.Mark("adopted pid %d (process group %d) from a previous gantry", pid, pid)
	p.emit(ev)
	return nil
}

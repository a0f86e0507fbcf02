package supervise

import (
	"context"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// Stop stops the engine and waits until its whole process group is gone.
// It is a no-op on a stopped engine and clears a failed one.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.retry != nil {
		p.retry.Stop()
		p.retry = nil
	}
	r := p.cur
	if p.state == status.Stopped || p.state == status.Failed || r == nil {
		ev := p.setState(status.Stopped, "stopped")
		p.cur = nil
		p.failures = 0
		p.mu.Unlock()
		p.emit(ev)
		return nil
	}
	if p.state == status.Stopping {
		p.mu.Unlock()
		select { // someone else is stopping it; wait for them
		case <-r.exited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ev := p.setState(status.Stopping, "stop requested")
	p.mu.Unlock()
	p.emit(ev)
	r.cancel()
	p.log.Mark("stopping %s", p.model.Name)
	err := p.terminate(ctx, r)
	p.mu.Lock()
	if p.cur == r {
		p.cur = nil
		p.pid = 0
		p.failures = 0
		ev = p.setState(status.Stopped, "stopped")
	} else {
		ev = nil
	}
	p.mu.Unlock()
	p.emit(ev)
	return err
}

// terminate asks the engine to stop, then kills its group after stop_timeout.
func (p *Process) terminate(ctx context.Context, r *run) error {
	grace := p.model.StopTimeout.D()
	if r.ctr != "" {
		return p.stopContainer(ctx, r, grace)
	}
	if r.pgid == 0 { // never launched
		<-r.exited
		p.opts.Registry.drop(p.opts.Key, r.token)
		return nil
	}
	signalGroup(r.pgid, syscall.SIGTERM)
	p.killGroup(r, grace)
	return nil
}

// killGroup waits up to grace for the leader to exit and the group to empty,
// then SIGKILLs whatever is left of the group and reaps the leader.
func (p *Process) killGroup(r *run, grace time.Duration) {
	if r.pgid == 0 {
		return
	}
	deadline := time.Now().Add(grace)
	select {
	case <-r.exited:
	case <-time.After(grace):
	}
	if !waitGroupGone(r.pgid, deadline) {
		p.log.Mark("process group %d still alive after %s: SIGKILL", r.pgid, grace)
		signalGroup(r.pgid, syscall.SIGKILL)
	}
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		p.logger.Error("engine did not exit after SIGKILL", "pid", r.pgid)
	}
	for i := 0; i < 100 && groupAlive(r.pgid); i++ {
		time.Sleep(10 * time.Millisecond) // the kernel reaps the group's members
	}
	p.opts.Registry.drop(p.opts.Key, r.token)
}

// KillGroup stops a process group gantry no longer supervises (an engine
// a previous gantry left behind): SIGTERM, up to grace for it to go, then
// SIGKILL.
func KillGroup(pgid int, grace time.Duration) {
	signalGroup(pgid, syscall.SIGTERM)
	if !waitGroupGone(pgid, time.Now().Add(grace)) {
		signalGroup(pgid, syscall.SIGKILL)
	}
}

// waitGroupGone waits until the group has no living member or until
// passes, and reports whether it went. Other processes' exits give no
// event to wait on: it polls.
func waitGroupGone(pgid int, until time.Time) bool {
	for groupAlive(pgid) {
		if !time.Now().Before(until) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func signalGroup(pgid int, sig syscall.Signal) {
	if pgid > 0 {
		_ = syscall.Kill(-pgid, sig)
	}
}

// groupAlive reports whether any process of the group exists. Zombies of
// the group count as gone: they hold no memory.
func groupAlive(pgid int) bool {
	if pgid <= 0 {
		return false
	}
	if err := syscall.Kill(-pgid, 0); err != nil {
		return false
	}
	return groupHasLiving(pgid)
}

// Close stops the engine and prevents further starts.
func (p *Process) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.Stop(ctx)
	p.endTail()
	p.log.Close()
	return err
}

// endTail stops the log tail; Close and Detach may both call it.
func (p *Process) endTail() { p.tailOnce.Do(func() { close(p.done) }) }

// Detach forgets the engine without stopping it (gantry is being replaced
// and the next one adopts it) and prevents further starts.
func (p *Process) Detach() {
	p.mu.Lock()
	p.closed, p.detached = true, true
	if p.retry != nil {
		p.retry.Stop()
	}
	p.cur = nil
	p.mu.Unlock()
	p.endTail()
	p.log.Close()
}

// Kill ends the engine at once, as if it had died: SIGKILL to its group
// (a container is stopped without grace), reason noted in its log. It is
// then failed like any engine that exits — and restarted when always-on.
// A model across nodes uses it when another rank dies: the group cannot
// go on without it. It is a no-op when no engine runs.
func (p *Process) Kill(reason string) {
	p.mu.Lock()
	r := p.cur
	live := r != nil && (p.state == status.Starting || p.state == status.Ready)
	p.mu.Unlock()
	if !live {
		return
	}
	p.log.Mark("killed by gantry: %s", reason)
	if r.ctr != "" {
		p.stopContainer(context.Background(), r, 0) //nolint:errcheck // its end is reported as an exit
		return
	}
	signalGroup(r.pgid, syscall.SIGKILL)
}

package sched

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// retryFailedAfter is how long a failed on-demand model with a fallback is
// passed over before a request tries to start it again.
const retryFailedAfter = 30 * time.Second

// Lease is a ready engine handed to one request. Release it exactly once
// when the response is done.
type Lease struct {
	// Model is the model that serves the request: the one asked for, or its
	// fallback.
	Model *config.Model
	// BaseURL is the engine's address.
	BaseURL string
	// FallbackFor names the model that was asked for when a fallback serves.
	FallbackFor string
	// Waited is how long the request waited for its lease (0: the fast
	// path): for a load, a slot's switch, a place under max_concurrency.
	// Cold says the wait was for the model to become ready (it loaded, or
	// its slot switched to it, or a fallback served): not a wait for a
	// place on a model that was ready all along.
	Cold   bool
	Waited time.Duration

	s *Scheduler
	e *entry
	p Priority
	// readyAt is when the engine became ready, as the lease was taken.
	readyAt time.Time
}

// Release ends the lease: the model's idle timer starts when its last
// in-flight request is released.
func (l *Lease) Release() {
	s := l.s
	s.mu.Lock()
	l.e.inflight--
	l.e.lastUsed = time.Now()
	if l.p == Interactive {
		l.e.inflightInteractive--
		l.e.interactiveAt = l.e.lastUsed
	}
	if l.e.inflight == 0 {
		l.e.armIdleLocked(s)
		s.broadcastLocked() // a drain may be waiting for this
	} else if l.e.m.MaxConcurrency > 0 && l.e.queued > 0 {
		s.broadcastLocked() // a place is free for one who waits
	}
	s.mu.Unlock()
}

// Acquire returns a ready engine for the model (name or alias), starting
// it, switching its slot or evicting idle models as needed, and waiting
// while it loads. When the model cannot start and has a fallback, the
// fallback serves.
func (s *Scheduler) Acquire(ctx context.Context, name string) (*Lease, error) {
	return s.AcquireAs(ctx, name, Interactive)
}

// AcquireAs is Acquire for a request of priority p.
func (s *Scheduler) AcquireAs(ctx context.Context, name string, p Priority) (*Lease, error) {
	// The fast path: a ready model costs one lock and no allocation
	// besides the lease.
	s.mu.Lock()
	e := s.lookupLocked(name)
	if e == nil {
		s.mu.Unlock()
		return nil, s.unknown(name)
	}
	if e.fastLocked() {
		l := e.leaseLocked(s, p)
		s.mu.Unlock()
		return l, nil
	}
	s.mu.Unlock()
	began := time.Now()
	l, err := s.acquireSlow(ctx, e, "", 0, p)
	if l != nil {
		l.Waited = time.Since(began)
		l.Cold = l.FallbackFor != "" || l.readyAt.After(began)
	}
	return l, err
}

// TryAcquire is Acquire's fast path alone: a lease when the model (name or
// alias) is ready now, nil when it is not (then Acquire waits for it).
func (s *Scheduler) TryAcquire(name string) *Lease { return s.TryAcquireAs(name, Interactive) }

// TryAcquireAs is TryAcquire for a request of priority p.
func (s *Scheduler) TryAcquireAs(name string, p Priority) *Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookupLocked(name); e != nil && e.fastLocked() {
		return e.leaseLocked(s, p)
	}
	return nil
}

// followerErr refuses to serve or start, on its own, a rank ≥ 1 of a
// model across nodes: its leader starts it, and requests go there.
func followerErr(m *config.Model) error {
	if !m.Follower() {
		return nil
	}
	return fmt.Errorf("%w: %s is rank %d of a group that peer %s leads: requests and starts go there",
		ErrStartFailed, m.Name, m.Rank(), m.Leader())
}

func (e *entry) leaseLocked(s *Scheduler, p Priority) *Lease {
	e.inflight++
	e.lastUsed = time.Now()
	if p == Interactive {
		e.inflightInteractive++
		e.interactiveAt = e.lastUsed
	}
	e.stopIdleLocked()
	return &Lease{Model: e.m, BaseURL: e.baseURL, s: s, e: e, p: p}
}

func (s *Scheduler) acquireSlow(ctx context.Context, e *entry, fallbackFor string, depth int, p Priority) (*Lease, error) {
	if err := followerErr(e.m); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if n := e.queued; n >= e.m.QueueLimit {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %d requests are already waiting for %s (queue_limit)", ErrQueueFull, n, e.m.Name)
	}
	if e.draining && s.conf.Load().Slots[e.m.Slot].DuringSwitch == "refuse" {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: slot %s is switching away from %s; retry shortly", ErrSlotSwitching, e.m.Slot, e.m.Name)
	}
	e.queued++
	if p == Interactive {
		e.queuedInteractive++
		s.broadcastLocked() // a batch switch under way gives way to it
	}
	s.mu.Unlock()

	err := s.ready(ctx, e, p)

	e.queued--
	if p == Interactive {
		e.queuedInteractive--
		s.broadcastLocked() // batch requests may wait behind this one
	}
	if err == nil {
		l := e.leaseLocked(s, p)
		l.FallbackFor, l.readyAt = fallbackFor, e.readyAt
		s.mu.Unlock()
		return l, nil
	}
	if ctx.Err() != nil && e.m.AbandonedLoads == "cancel" && e.queued == 0 && e.inflight == 0 &&
		e.state == status.Starting && !e.alwaysOn {
		// Everybody who wanted this load went away: stop it.
		s.mu.Unlock()
		s.logger.Info("load abandoned by every request: stopping", "model", e.m.Name)
		go s.Stop(context.Background(), e.m.Name) //nolint:errcheck // shows in Status
		return nil, err
	}
	fb := e.m.Fallback
	chain := len(s.models) // a fallback chain is at most this long
	e.armIdleLocked(s)
	s.mu.Unlock()
	if fb != "" && depth < chain && (errors.Is(err, ErrStartFailed) || errors.Is(err, ErrInsufficientMemory)) {
		f, ferr := s.lookup(fb)
		if ferr == nil {
			s.emit(status.Event{Kind: status.KindFallback, Model: e.m.Name, To: f.m.Name, Reason: err.Error()})
			if fallbackFor == "" {
				fallbackFor = e.m.Name
			}
			return s.acquireSlow(ctx, f, fallbackFor, depth+1, p)
		}
	}
	return nil, err
}

// Start starts a model (name or alias) through the same admission as a
// request (memory, slot) and waits until it is ready.
func (s *Scheduler) Start(ctx context.Context, name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	if err := followerErr(e.m); err != nil {
		return err
	}
	return s.start(ctx, e)
}

func (s *Scheduler) start(ctx context.Context, e *entry) error {
	s.mu.Lock()
	e.queued++
	s.mu.Unlock()
	err := s.ensure(ctx, e, Interactive)
	s.mu.Lock()
	e.queued--
	e.armIdleLocked(s)
	s.mu.Unlock()
	return err
}

// Begin starts a model (if it is not running) without waiting for it to be
// ready; the start goes on in the background and shows in Status. It
// returns once the start is under way (or has already failed: then with
// its error), so a status read right after already says "starting".
func (s *Scheduler) Begin(name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	if err := followerErr(e.m); err != nil {
		return err
	}
	return s.begin(e)
}

// BeginRank is Begin for this box's rank ≥ 1 of a model across nodes, on
// its leader's word: through the same admission (memory on this box's
// budget), without waiting for the load, which needs every rank.
func (s *Scheduler) BeginRank(name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	if !e.m.Follower() {
		return fmt.Errorf("%w: %s is not a rank this box runs for another's lead", ErrStartFailed, e.m.Name)
	}
	return s.begin(e)
}

func (s *Scheduler) begin(e *entry) error {
	name := e.m.Name
	done := make(chan error, 1)
	go func() {
		err := s.start(context.Background(), e)
		if err != nil {
			s.logger.Warn("start failed", "model", name, "err", err)
		}
		done <- err
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for e.state != status.Starting && e.state != status.Ready && time.Now().Before(deadline) {
		select {
		case err := <-done:
			return err
		default:
		}
		s.waitLocked(context.Background(), 10*time.Millisecond) //nolint:errcheck // a background context never ends the wait early
	}
	return nil
}

// ensure makes e's engine ready: it waits out stops and switches under
// way, switches e's slot to it, admits it into the memory budget (evicting
// idle on-demand models LRU-first) and starts it. It returns nil when e is
// ready and not being drained or stopped.
func (s *Scheduler) ensure(ctx context.Context, e *entry, p Priority) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.releaseSlotLocked(e) // on every way out, with s.mu held
	for {
		if s.closed {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case e.state == status.Ready && !e.draining && !e.evicting:
			return nil
		case e.evicting || e.draining || e.state == status.Stopping:
			// A stop or a slot switch is under way; once it is done the
			// model is started again (never hung on a dying engine).
			if err := s.waitLocked(ctx, 0); err != nil {
				return err
			}
			continue
		case e.state == status.Starting:
			if err := s.startLocked(ctx, e); err != nil {
				return err
			}
			continue
		case e.state == status.Failed && e.alwaysOn,
			e.state == status.Failed && e.m.Fallback != "" && time.Since(e.failedAt) < retryFailedAfter:
			return startError(e.m.Name, e.diagnosis, errors.New(e.reason))
		}
		// Stopped (or failed and worth another try): refuse what is known
		// not to work, then take the slot, then the memory, then start.
		if f := e.plan.StartBlocker(); f != nil {
			return fmt.Errorf("%w: %s: %s — %s", ErrStartFailed, e.m.Name, f.Reason, f.Fix)
		}
		if e.m.Slot != "" {
			switched, err := s.takeSlotLocked(ctx, e, p)
			if err != nil {
				return err
			}
			if switched {
				continue
			}
		}
		if !e.holds {
			ok, err := s.admitLocked(ctx, e, p)
			if err != nil {
				s.releaseSlotLocked(e)
				return err
			}
			if !ok {
				continue // evictions under way; look again
			}
		}
		s.releaseSlotLocked(e)
		if err := s.startLocked(ctx, e); err != nil {
			return err
		}
	}
}

// ready makes e ready (ensure) and waits for one of its places
// (max_concurrency) in priority order; it returns with s.mu held, and nil
// when the caller may lease e now.
func (s *Scheduler) ready(ctx context.Context, e *entry, p Priority) error {
	for {
		err := s.ensure(ctx, e, p)
		s.mu.Lock()
		if err != nil {
			return err
		}
		for e.servingLocked() && !e.admitsLocked(p) {
			if err := s.waitLocked(ctx, 0); err != nil {
				return err
			}
		}
		if e.servingLocked() {
			return nil
		}
		s.mu.Unlock() // stopped or switched away meanwhile: make it ready again
	}
}

// servingLocked reports whether e is ready to serve.
func (e *entry) servingLocked() bool {
	return e.state == status.Ready && !e.draining && !e.evicting
}

// startLocked starts (or joins the start of) e's engine with s.mu released.
func (s *Scheduler) startLocked(ctx context.Context, e *entry) error {
	s.mu.Unlock()
	err := e.proc.Start(ctx)
	s.mu.Lock()
	if err == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, supervise.ErrClosed) {
		return ErrClosed
	}
	if e.state == status.Stopping || e.state == status.Stopped && e.evicting {
		return nil // stopped under us on purpose; ensure looks again
	}
	return startError(e.m.Name, s.failureDiagnosis(e, err), err)
}

// startError is what a request (and `gantry start`) is told when its
// model did not start: gantry's diagnosis — cause and fix — first, the
// engine's own last line after it as the detail.
func startError(name, diag string, err error) error {
	if diag == "" {
		return fmt.Errorf("%w: %s: %v", ErrStartFailed, name, err)
	}
	return fmt.Errorf("%w: %s: %s (the engine: %v)", ErrStartFailed, name, diag, err)
}

// failureDiagnosis diagnoses the failed start that returned err, once for
// all the requests that waited on it; s.mu is held, and released while the
// log is read.
func (s *Scheduler) failureDiagnosis(e *entry, err error) string {
	if e.failErr == err.Error() {
		return e.failDiag
	}
	s.mu.Unlock()
	d := s.diagnose(e, supervise.Event{To: status.Failed, Reason: err.Error()})
	s.mu.Lock()
	e.failErr, e.failDiag = err.Error(), d
	return d
}

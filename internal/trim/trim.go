// Package trim gives the system back the memory a burst of requests left
// in gantry's heap, once the gateway has gone quiet.
//
// Go's runtime keeps what the heap grew to: a finished burst's buffers and
// goroutine stacks are garbage until the next collection, which an idle
// daemon never triggers (it allocates nothing), and the pages a collection
// frees go back to the system only slowly, and only beyond the next heap
// goal (twice the live heap). After 500 streams that was 20–30 MB held for
// nothing while the box's engines want every byte. Once no request has
// been in flight for a while, Quiet collects twice (the second empties what
// the first moved into sync.Pools' victim caches: the relay's and net/http's
// buffers) and returns every free page (debug.FreeOSMemory).
package trim

import (
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Quiet watches the gateway's requests in flight and trims the heap once
// they have stayed at zero for its quiet time, at most once per its
// interval. A nil *Quiet does nothing (trimming off). Safe for concurrent
// use.
type Quiet struct {
	after, every time.Duration
	release      func()
	base         time.Time // lastEnd and trimmed count from it (monotonic)

	inflight atomic.Int64
	lastEnd  atomic.Int64 // when the last request ended, ns since base
	armed    atomic.Bool  // the timer is set (or its function runs)
	timer    *time.Timer

	mu      sync.Mutex
	trimmed time.Duration // the last trim, since base; -1: none yet
	stopped bool
}

// New returns a Quiet that trims after quiet time without a request in
// flight, and not again within every of the last trim. Each trim is
// logged at debug level on lg (nil: not logged): what it returned, and
// what it took.
func New(quiet, every time.Duration, lg *slog.Logger) *Quiet {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return NewFunc(quiet, every, func() {
		t0 := time.Now()
		returned := Release()
		lg.Debug("heap trimmed", "returned_mib", fmt.Sprintf("%.1f", float64(returned)/(1<<20)), "took", time.Since(t0).Round(10*time.Microsecond))
	})
}

// released is the runtime's count of the heap's bytes returned to the
// system.
const released = "/memory/classes/heap/released:bytes"

// Release collects the heap twice and returns its free pages to the
// system, what a trim does; it returns how many bytes went back.
func Release() (returned int64) {
	s := []metrics.Sample{{Name: released}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	runtime.GC()
	debug.FreeOSMemory()
	metrics.Read(s)
	return int64(s[0].Value.Uint64()) - int64(before)
}

// NewFunc is New with release called in place of a trim (tests count the
// calls).
func NewFunc(after, every time.Duration, release func()) *Quiet {
	q := &Quiet{after: after, every: every, release: release, base: time.Now(), trimmed: -1}
	q.timer = time.AfterFunc(time.Hour, q.fire)
	q.timer.Stop()
	return q
}

// Begin counts a request in flight.
func (q *Quiet) Begin() {
	if q != nil {
		q.inflight.Add(1)
	}
}

// End counts a request done; the last one in flight sets the timer
// unless it is set. Two atomic operations and a clock read on the request
// path; the timer is touched once per quiet spell, not per request.
func (q *Quiet) End() {
	if q == nil || q.inflight.Add(-1) != 0 {
		return
	}
	q.lastEnd.Store(int64(time.Since(q.base)))
	if q.armed.CompareAndSwap(false, true) {
		q.timer.Reset(q.after)
	}
}

// Stop stops the timer; a trim that runs finishes.
func (q *Quiet) Stop() {
	if q == nil {
		return
	}
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.timer.Stop()
}

// fire is the timer's: trim when the gateway has been quiet long enough
// and the last trim is far enough back, or set the timer for when that
// will be. A request that begins meanwhile leaves the timer unset: the
// end of the last one in flight sets it again.
func (q *Quiet) fire() {
	q.armed.Store(false)
	if q.inflight.Load() > 0 {
		return
	}
	now := time.Since(q.base)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	wait := time.Duration(q.lastEnd.Load()) + q.after - now
	if q.trimmed >= 0 {
		wait = max(wait, q.trimmed+q.every-now)
	}
	if wait > 0 {
		if q.armed.CompareAndSwap(false, true) {
			q.timer.Reset(wait)
		}
		return
	}
	q.trimmed = now
	q.release()
}

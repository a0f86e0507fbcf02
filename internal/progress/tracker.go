package progress

import (
	"sync"
	"time"
)

// Tracker follows one load: it is fed every segment of the engine's output
// and keeps the latest step. It is safe for concurrent use; Feed is quick
// enough to run under the log's lock.
type Tracker struct {
	mu       sync.Mutex
	step     Step
	began    time.Time // when the load began
	changed  bool      // a step not yet taken
	taken    Step      // the step last handed out by Take
	takenAt  time.Time
	interval time.Duration
	parser   Parser
}

// NewTracker returns a tracker that reads the output with p and whose
// Take hands out a step at most once per interval within a phase (a new
// phase is handed out at once).
func NewTracker(interval time.Duration, p Parser) *Tracker {
	return &Tracker{interval: interval, parser: p, step: Step{Phase: Starting, Fraction: -1}}
}

// Reset begins a new load at now.
func (t *Tracker) Reset(now time.Time) {
	t.mu.Lock()
	t.step, t.began, t.changed = Step{Phase: Starting, Fraction: -1}, now, false
	t.taken, t.takenAt = Step{}, time.Time{}
	t.mu.Unlock()
}

// Feed reads one segment of output.
func (t *Tracker) Feed(segment string) {
	s, ok := t.parser.Parse(segment)
	if !ok {
		return
	}
	t.mu.Lock()
	if s != t.step {
		t.step, t.changed = s, true
	}
	t.mu.Unlock()
}

// Set records a step gantry itself takes (freeing the page cache before
// the engine runs), as if the engine had printed it.
func (t *Tracker) Set(s Step) {
	t.mu.Lock()
	if s != t.step {
		t.step, t.changed = s, true
	}
	t.mu.Unlock()
}

// Current is the latest step and when the load began.
func (t *Tracker) Current() (Step, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.step, t.began
}

// Take returns the latest step if it is news worth an event: a new phase,
// or the same phase moved on and interval has passed since the last one.
func (t *Tracker) Take(now time.Time) (Step, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.changed {
		return Step{}, false
	}
	if t.step.Phase == t.taken.Phase && now.Sub(t.takenAt) < t.interval {
		return Step{}, false
	}
	t.changed, t.taken, t.takenAt = false, t.step, now
	return t.step, true
}

// Estimate is the whole load's percent done (0 to 99) and the seconds
// left, from the time since it began and the model's previous load
// (last, 0: unknown). Without a previous load only a phase that counts
// its units gives a percent of itself, and no time is promised: -1, -1.
func Estimate(elapsed, last time.Duration) (percent int, eta float64) {
	if last > 0 {
		p := int(100 * elapsed / last)
		left := (last - elapsed).Seconds()
		if left < 0 {
			left = 0
		}
		return min(max(p, 0), 99), left
	}
	return -1, -1
}

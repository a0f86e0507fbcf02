package supervise

import (
	"context"
	"fmt"
	"sync"

	"github.com/gantryhq/gantry/internal/status"
)

// Attempts is the start skeleton every runner shares (a Process, an
// Ollama model on the shared server): a Start of a ready runner returns at
// once, one of a starting runner joins the start under way, one of a
// stopping runner is refused, and a caller waits for the start's end or
// for its own context. The runner guards it with its own lock: every
// method but Wait is called with that lock held.
type Attempts struct {
	done chan struct{} // closed when the current start attempt ends
	err  error         // its outcome
}

// Join says what a Start of the runner called name does in state st: a
// ready runner has nothing to do (all zero); a starting one is joined
// (done: the start under way's); a stopping one refuses (err); any other
// begins a new start (begin).
func (a *Attempts) Join(st status.State, name string) (done <-chan struct{}, begin bool, err error) {
	switch st {
	case status.Ready:
		return nil, false, nil
	case status.Starting:
		return a.done, false, nil
	case status.Stopping:
		return nil, false, fmt.Errorf("%s is stopping; start it again when it has stopped", name)
	}
	return nil, true, nil
}

// Begin opens a new attempt and returns the channel its End closes.
func (a *Attempts) Begin() chan struct{} {
	a.done, a.err = make(chan struct{}), nil
	return a.done
}

// End ends the attempt whose channel is done, with err as its outcome.
func (a *Attempts) End(done chan struct{}, err error) {
	a.err = err
	close(done)
}

// Current is the channel of the attempt under way or last ended (nil:
// none yet).
func (a *Attempts) Current() <-chan struct{} { return a.done }

// Wait waits for done to close or ctx to end, and returns the attempt's
// outcome, read under mu (the runner's lock, not held by the caller).
func (a *Attempts) Wait(ctx context.Context, mu sync.Locker, done <-chan struct{}) error {
	select {
	case <-done:
		mu.Lock()
		defer mu.Unlock()
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

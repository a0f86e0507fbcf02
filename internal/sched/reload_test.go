package sched

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// TestReloadUnderRequests: requests (with fallbacks, so the slow path runs)
// keep coming while configs are reloaded; under -race nothing the reload
// writes is read unguarded.
func TestReloadUnderRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := "models:\n  a: {engine: sim, memory: 1GiB, fallback: b}\n  b: {engine: sim, memory: 1GiB}\n"
		s, r := newTestSched(t, base, 100<<30)
		r["a"].setFail(true)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if l, err := s.Acquire(context.Background(), "a"); err == nil {
						time.Sleep(100 * time.Millisecond)
						l.Release()
					} else {
						time.Sleep(100 * time.Millisecond)
					}
				}
			}()
		}
		root := s.Config().Root
		for i := 0; i < 5; i++ {
			time.Sleep(time.Second)
			extra := ""
			if i%2 == 0 {
				extra = "  c: {engine: sim, memory: 1GiB}\n"
			}
			c, err := config.Parse("t.yaml", []byte("root: "+root+"\nmemory: {reserve: 0GiB}\n"+base+extra))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Reload(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
	})
}

// TestReloadIsAllOrNothing: when the second model of a new config cannot
// be built, the first config keeps serving — its engines untouched — and
// nothing built for the new one is left open.
func TestReloadIsAllOrNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		parse := func(y string) *config.Config {
			c, err := config.Parse("t.yaml", []byte("root: "+root+"\nmemory: {reserve: 0GiB}\n"+y))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		var built, closed atomic.Int32
		runners := map[string]*fakeRunner{}
		var mu sync.Mutex
		nr := func(sp RunnerSpec) (Runner, error) {
			if sp.Model.Name == "broken" {
				return nil, errors.New("cannot build")
			}
			built.Add(1)
			f := &fakeRunner{m: sp.Model, opts: sp.Options, load: time.Second, state: status.Stopped, onClose: func() { closed.Add(1) }}
			mu.Lock()
			runners[sp.Model.Name] = f
			mu.Unlock()
			return f, nil
		}
		s, err := New(parse("models:\n  a: {engine: sim, memory: 1GiB}\n"), Options{MemoryTotal: 100 << 30, NewRunner: nr})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		use(t, s, "a")
		old := runners["a"]
		// a changes (a restart) and broken cannot be built.
		_, err = s.Reload(context.Background(), parse("models:\n  a: {engine: sim, memory: 2GiB}\n  aa: {engine: sim, memory: 1GiB}\n  broken: {engine: sim, memory: 1GiB}\n"))
		if err == nil {
			t.Fatal("the reload succeeded")
		}
		old.wantState(t, status.Ready)
		use(t, s, "a")
		if got := s.Status().Model("a").MemoryBytes; got != 1<<30 {
			t.Errorf("a reserves %d: the new config half applied", got)
		}
		if _, err := s.Process("aa"); err == nil {
			t.Error("aa of the refused config is known")
		}
		if b, c := built.Load(), closed.Load(); b-1 != c {
			t.Errorf("built %d runners for the refused config, closed %d", b-1, c)
		}
	})
}

package sched

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// fakeRunner is an engine that loads for loadTime of (bubble) time; the
// scheduler's logic is tested here, the real processes in e2e and gateway.
type fakeRunner struct {
	m    *config.Model
	opts supervise.Options
	load time.Duration
	fail bool
	// onClose, when set, is called by Close.
	onClose func()

	mu      sync.Mutex
	state   status.State
	starts  int
	started time.Time
	done    chan struct{}
	err     error
}

func (f *fakeRunner) emit(from, to status.State, reason string) {
	f.opts.OnEvent(supervise.Event{Model: f.m.Name, From: from, To: to, Reason: reason, Time: time.Now()})
}

func (f *fakeRunner) Start(ctx context.Context) error {
	f.mu.Lock()
	switch f.state {
	case status.Ready:
		f.mu.Unlock()
		return nil
	case status.Stopping:
		f.mu.Unlock()
		return errors.New("is stopping")
	case status.Starting:
		done := f.done
		f.mu.Unlock()
		select {
		case <-done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	from := f.state
	f.state = status.Starting
	f.starts++
	f.started = time.Now()
	f.done = make(chan struct{})
	done := f.done
	f.mu.Unlock()
	f.emit(from, status.Starting, "start")
	go func() {
		time.Sleep(f.load)
		f.mu.Lock()
		if f.state != status.Starting { // stopped while loading
			f.err = errors.New("stopped while starting")
			close(done)
			f.mu.Unlock()
			return
		}
		to := status.Ready
		f.err = nil
		if f.fail {
			to, f.err = status.Failed, errors.New("exited while starting (exit status 1)")
		}
		f.state = to
		close(done)
		f.mu.Unlock()
		f.emit(status.Starting, to, "")
	}()
	select {
	case <-done:
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeRunner) Stop(ctx context.Context) error {
	f.mu.Lock()
	from := f.state
	if from == status.Stopped {
		f.mu.Unlock()
		return nil
	}
	f.state = status.Stopping
	f.mu.Unlock()
	f.emit(from, status.Stopping, "")
	time.Sleep(time.Second) // the engine's own shutdown
	f.mu.Lock()
	f.state = status.Stopped
	f.mu.Unlock()
	f.emit(status.Stopping, status.Stopped, "")
	return nil
}

func (f *fakeRunner) Close(ctx context.Context) error {
	if f.onClose != nil {
		f.onClose()
	}
	return f.Stop(ctx)
}
func (f *fakeRunner) Status() supervise.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return supervise.Status{State: f.state, Starts: f.starts, StartedAt: f.started}
}
func (f *fakeRunner) SetRestart(bool)       {}
func (f *fakeRunner) State() status.State   { return f.current() }
func (f *fakeRunner) Model() *config.Model  { return f.m }
func (f *fakeRunner) Launch() engine.Launch { return engine.Launch{BaseURL: "http://fake/" + f.m.Name} }
func (f *fakeRunner) Log() *supervise.Log   { return nil }
func (f *fakeRunner) current() status.State { return f.Status().State }
func (f *fakeRunner) startCount() int       { return f.Status().Starts }
func (f *fakeRunner) setFail(b bool)        { f.mu.Lock(); f.fail = b; f.mu.Unlock() }
func (f *fakeRunner) wantState(t *testing.T, s status.State) {
	t.Helper()
	if got := f.current(); got != s {
		t.Errorf("%s is %s, want %s", f.m.Name, got, s)
	}
}

// fakeRunners is a NewRunner of fake engines that load at once.
func fakeRunners(sp RunnerSpec) (Runner, error) {
	return &fakeRunner{m: sp.Model, opts: sp.Options, state: status.Stopped}, nil
}

// newTestSched builds a scheduler on fake engines that load in 10 s.
func newTestSched(t *testing.T, yaml string, total int64) (*Scheduler, map[string]*fakeRunner) {
	t.Helper()
	c, err := config.Parse("t.yaml", []byte("root: "+t.TempDir()+"\nmemory: {reserve: 0GiB}\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	runners := map[string]*fakeRunner{}
	s, err := New(c, Options{OnEvent: func(ev status.Event) {
		if testing.Verbose() {
			t.Logf("%s %s %s %s→%s %s", ev.Time.Format("04:05.000"), ev.Kind, ev.Model, ev.From, ev.To, ev.Reason)
		}
	}, MemoryTotal: total, NewRunner: func(sp RunnerSpec) (Runner, error) {
		f := &fakeRunner{m: sp.Model, opts: sp.Options, load: 10 * time.Second, state: status.Stopped}
		runners[sp.Model.Name] = f
		return f, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, runners
}

func use(t *testing.T, s *Scheduler, name string) {
	t.Helper()
	l, err := s.Acquire(context.Background(), name)
	if err != nil {
		t.Fatalf("acquire %s: %v", name, err)
	}
	l.Release()
}

func TestColdAcquireStartsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB}\n", 100<<30)
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := s.Acquire(context.Background(), "a")
				if err == nil {
					l.Release()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := r["a"].startCount(); n != 1 {
			t.Errorf("50 cold requests started the engine %d times", n)
		}
	})
}

func TestIdleTimeoutCountsFromLastRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, idle_timeout: 5m}\n", 100<<30)
		l, err := s.Acquire(context.Background(), "a")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute) // a long stream, longer than idle_timeout
		synctest.Wait()
		r["a"].wantState(t, status.Ready)
		l.Release()
		time.Sleep(4 * time.Minute)
		synctest.Wait()
		r["a"].wantState(t, status.Ready)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		time.Sleep(2 * time.Second) // the engine's own stop
		synctest.Wait()
		r["a"].wantState(t, status.Stopped)
	})
}

func TestAlwaysOnNeverIdlesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, idle_timeout: 1m, mode: always-on}\n", 100<<30)
		s.Boot(context.Background())
		time.Sleep(time.Hour)
		synctest.Wait()
		r["a"].wantState(t, status.Ready)
	})
}

func TestRequestDuringIdleStopIsServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, idle_timeout: 1m}\n", 100<<30)
		use(t, s, "a")
		time.Sleep(time.Minute + 500*time.Millisecond) // the stop has begun (it takes 1s)
		r["a"].wantState(t, status.Stopping)
		l, err := s.Acquire(context.Background(), "a")
		if err != nil {
			t.Fatalf("a request during the idle stop: %v", err)
		}
		l.Release()
		if n := r["a"].startCount(); n != 2 {
			t.Errorf("starts %d, want 2 (restarted after the idle stop)", n)
		}
	})
}

const threeModels = `models:
  a: {engine: sim, memory: 10GiB}
  b: {engine: sim, memory: 10GiB}
  c: {engine: sim, memory: 10GiB}
  big: {engine: sim, memory: 30GiB}
`

func TestLeastRecentlyUsedIsEvicted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, threeModels, 25<<30)
		use(t, s, "a")
		time.Sleep(time.Second)
		use(t, s, "b")
		time.Sleep(time.Second)
		use(t, s, "a") // a is now the more recently used
		use(t, s, "c")
		r["b"].wantState(t, status.Stopped)
		r["a"].wantState(t, status.Ready)
		r["c"].wantState(t, status.Ready)
		if st := s.Status(); st.Memory.ReservedBytes != 20<<30 {
			t.Errorf("reserved %d", st.Memory.ReservedBytes)
		}
	})
}

func TestTooBigIsRefusedAndNothingStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, threeModels, 25<<30)
		use(t, s, "a")
		use(t, s, "b")
		_, err := s.Acquire(context.Background(), "big")
		if !errors.Is(err, ErrInsufficientMemory) || !strings.Contains(err.Error(), "whole budget") {
			t.Fatalf("got %v", err)
		}
		r["a"].wantState(t, status.Ready)
		r["b"].wantState(t, status.Ready)
	})
}

func TestBusyModelsAreNotEvicted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, threeModels, 25<<30)
		la, _ := s.Acquire(context.Background(), "a")
		lb, _ := s.Acquire(context.Background(), "b")
		_, err := s.Acquire(context.Background(), "c")
		if !errors.Is(err, ErrInsufficientMemory) || !strings.Contains(err.Error(), "a 10GiB (busy: 1 in flight") {
			t.Fatalf("got %v", err)
		}
		r["a"].wantState(t, status.Ready)
		la.Release()
		lb.Release()
		use(t, s, "c") // now a (least recently released) can go
		r["c"].wantState(t, status.Ready)
	})
}

func TestQueueLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, queue_limit: 2}\n", 100<<30)
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if l, err := s.Acquire(context.Background(), "a"); err == nil {
					l.Release()
				}
			}()
		}
		synctest.Wait() // both wait for the load
		_, err := s.Acquire(context.Background(), "a")
		if !errors.Is(err, ErrQueueFull) {
			t.Errorf("third waiting request: %v, want ErrQueueFull", err)
		}
		wg.Wait()
	})
}

const slotConfig = `slots:
  private: {port: 30001, min_residency: 1m}
models:
  qwen: {engine: sim, memory: 10GiB, slot: private, stop_timeout: 10m}
  r1: {engine: sim, memory: 10GiB, slot: private, stop_timeout: 10m}
`

func TestSlotSwitchDrainsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, slotConfig, 100<<30)
		lq, err := s.Acquire(context.Background(), "qwen")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			l, err := s.Acquire(context.Background(), "r1")
			if err == nil {
				l.Release()
			}
			got <- err
		}()
		time.Sleep(5 * time.Minute) // a long request on qwen, within its stop_timeout
		synctest.Wait()
		r["qwen"].wantState(t, status.Ready) // not cut off
		r["r1"].wantState(t, status.Stopped) // waits for the drain
		lq.Release()
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		r["qwen"].wantState(t, status.Stopped)
		r["r1"].wantState(t, status.Ready)
		if st := s.Status(); st.Slots[0].Current != "r1" {
			t.Errorf("slot status %+v", st.Slots)
		}
	})
}

func TestSlotMinResidencyStopsThrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, slotConfig, 100<<30)
		// Two clients alternate between the slot's members for 10 minutes.
		// Each member, once loaded, keeps the slot for min_residency (1m)
		// while it has work: at most ~one switch per minute, not one per
		// request.
		end := time.Now().Add(10 * time.Minute)
		var wg sync.WaitGroup
		served := map[string]int{}
		var mu sync.Mutex
		for _, m := range []string{"qwen", "r1"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					l, err := s.Acquire(context.Background(), m)
					if err != nil {
						t.Errorf("%s: %v", m, err)
						return
					}
					time.Sleep(200 * time.Millisecond)
					l.Release()
					mu.Lock()
					served[m]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		starts := r["qwen"].startCount() + r["r1"].startCount()
		if starts > 12 {
			t.Errorf("%d engine starts in 10 minutes of alternation: the slot thrashes", starts)
		}
		if served["qwen"] < 100 || served["r1"] < 100 {
			t.Errorf("served %v: one member starved", served)
		}
	})
}

func TestFallbackServes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, fallback: b}\n  b: {engine: sim, memory: 1GiB}\n", 100<<30)
		r["a"].setFail(true)
		l, err := s.Acquire(context.Background(), "a")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		if l.Model.Name != "b" || l.FallbackFor != "a" {
			t.Errorf("lease %s for %q", l.Model.Name, l.FallbackFor)
		}
		// Soon after, a failed model with a fallback is not retried.
		l2, err := s.Acquire(context.Background(), "a")
		if err != nil || l2.Model.Name != "b" {
			t.Fatalf("second: %v", err)
		}
		l2.Release()
		if n := r["a"].startCount(); n != 1 {
			t.Errorf("failed model retried %d times within %s", n, retryFailedAfter)
		}
	})
}

func TestProfileSwitchStartsAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB}\n  b: {engine: sim, memory: 1GiB}\nprofiles:\n  pa: {always_on: [a]}\n  pb: {always_on: [b]}\n", 100<<30)
		if err := s.SetProfile(context.Background(), "pa"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		r["a"].wantState(t, status.Ready)
		if err := s.SetProfile(context.Background(), "pb"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		r["a"].wantState(t, status.Stopped)
		r["b"].wantState(t, status.Ready)
		if err := s.SetProfile(context.Background(), "nope"); err == nil {
			t.Error("unknown profile accepted")
		}
		st, err := loadState(s.stateFile)
		if err != nil || st.Profile != "pb" {
			t.Errorf("saved state %+v %v", st, err)
		}
	})
}

func TestSavedProfileIsActiveAfterRestart(t *testing.T) {
	root := t.TempDir()
	src := "root: " + root + "\nmodels:\n  a: {engine: sim, memory: 1GiB}\nprofiles:\n  pa: {always_on: [a]}\n"
	c, err := config.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := saveState(StatePath(c), persisted{Profile: "pa"}); err != nil {
		t.Fatal(err)
	}
	s, err := New(c, Options{MemoryTotal: 10 << 30, NewRunner: fakeRunners})
	if err != nil {
		t.Fatal(err)
	}
	if s.Profile() != "pa" || !s.Status().Models[0].AlwaysOn {
		t.Errorf("profile %q, status %+v", s.Profile(), s.Status().Models[0])
	}
}

// BenchmarkAcquireReady is the scheduler's share of every request to a
// ready model: one lock for the lease, one for its release.
func BenchmarkAcquireReady(b *testing.B) {
	c, err := config.Parse("t.yaml", []byte("root: "+b.TempDir()+"\nmodels:\n  a: {engine: sim, memory: 1GiB, mode: always-on}\n"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(c, Options{MemoryTotal: 10 << 30, NewRunner: fakeRunners})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(context.Background(), "a"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l, err := s.Acquire(context.Background(), "a")
			if err != nil {
				b.Fatal(err)
			}
			l.Release()
		}
	})
}

func TestAbandonedLoad(t *testing.T) {
	for _, mode := range []string{"continue", "cancel"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, r := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, abandoned_loads: "+mode+"}\n", 100<<30)
				ctx, cancel := context.WithCancel(context.Background())
				go func() { time.Sleep(2 * time.Second); cancel() }() // the client gives up mid-load
				if _, err := s.Acquire(ctx, "a"); !errors.Is(err, context.Canceled) {
					t.Fatalf("got %v", err)
				}
				time.Sleep(time.Minute)
				synctest.Wait()
				want := status.Ready
				if mode == "cancel" {
					want = status.Stopped
				}
				r["a"].wantState(t, want)
			})
		})
	}
}

package sched

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

func TestResidencyLeft(t *testing.T) {
	now := time.Unix(10000, 0)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	min := 30 * time.Second
	cases := []struct {
		name              string
		ready, busy       bool
		readyAt, lastUsed time.Time
		wait              time.Duration
		ok                bool
	}{
		{"not ready gives way", false, true, ago(time.Second), now, 0, true},
		{"residency over", true, true, ago(40 * time.Second), now, 0, true},
		{"busy keeps the slot", true, true, ago(10 * time.Second), now, 20 * time.Second, false},
		{"never used since ready", true, false, ago(5 * time.Second), ago(time.Minute), 0, true},
		{"idle for a while gives way", true, false, ago(10 * time.Second), ago(4 * time.Second), 0, true},
		{"just used waits for the grace", true, false, ago(10 * time.Second), ago(time.Second), 2 * time.Second, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wait, ok := residencyLeft(c.ready, c.busy, c.readyAt, c.lastUsed, now, min)
			if ok != c.ok || wait != c.wait {
				t.Errorf("got %s %v, want %s %v", wait, ok, c.wait, c.ok)
			}
		})
	}
}

// TestSingleSwitchIsNotTaxed: one user tries qwen, then r1 a few seconds
// later; the switch does not wait out qwen's min_residency (1m).
func TestSingleSwitchIsNotTaxed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, slotConfig, 100<<30)
		use(t, s, "qwen")
		time.Sleep(5 * time.Second) // the user reads the answer
		began := time.Now()
		use(t, s, "r1")
		// qwen's stop (1 s) and r1's load (10 s) are the engines'; nothing
		// else may be waited for.
		if took := time.Since(began); took > 12*time.Second {
			t.Errorf("the switch took %s: it waited for min_residency", took)
		}
		r["qwen"].wantState(t, "stopped")
		r["r1"].wantState(t, "ready")
	})
}

func TestExplicitZeroResidency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestSched(t, `slots:
  private: {port: 30001, min_residency: 0s}
models:
  qwen: {engine: sim, memory: 10GiB, slot: private}
  r1: {engine: sim, memory: 10GiB, slot: private}
`, 100<<30)
		use(t, s, "qwen")
		l, err := s.Acquire(context.Background(), "qwen") // qwen busy
		if err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(time.Second); l.Release() }()
		began := time.Now()
		use(t, s, "r1")
		if took := time.Since(began); took > 13*time.Second {
			t.Errorf("the switch took %s with min_residency 0s", took)
		}
	})
}

// TestSlotDefaultComesBack: the slot's default starts at boot and does not
// idle out; a member that takes the slot and idles out gives it back to
// the default after default_after, with a default event.
func TestSlotDefaultComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []status.Event
		var mu sync.Mutex
		c, err := config.Parse("t.yaml", []byte("root: "+t.TempDir()+"\nmemory: {reserve: 0GiB}\n"+`slots:
  private: {port: 30001, default: qwen, default_after: 1m, min_residency: 0s}
models:
  qwen: {engine: sim, memory: 10GiB, slot: private, idle_timeout: 5m}
  r1: {engine: sim, memory: 10GiB, slot: private, idle_timeout: 5m}
`))
		if err != nil {
			t.Fatal(err)
		}
		r := map[string]*fakeRunner{}
		s, err := New(c, Options{MemoryTotal: 100 << 30, OnEvent: func(ev status.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}, NewRunner: func(sp RunnerSpec) (Runner, error) {
			f := &fakeRunner{m: sp.Model, opts: sp.Options, load: 10 * time.Second, state: status.Stopped}
			r[sp.Model.Name] = f
			return f, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		s.Boot(context.Background())
		time.Sleep(time.Hour) // the default is loaded and idle for long
		synctest.Wait()
		r["qwen"].wantState(t, "ready")

		use(t, s, "r1") // takes the slot
		r["qwen"].wantState(t, "stopped")
		time.Sleep(5*time.Minute + time.Second) // r1 idles out
		synctest.Wait()
		r["r1"].wantState(t, "stopped")
		r["qwen"].wantState(t, "stopped") // not before default_after
		time.Sleep(time.Minute + 11*time.Second)
		synctest.Wait()
		r["qwen"].wantState(t, "ready")
		mu.Lock()
		defer mu.Unlock()
		found := false
		for _, ev := range events {
			if ev.Kind == status.KindDefault && ev.Model == "qwen" && ev.From == "r1" {
				found = true
			}
		}
		if !found {
			t.Errorf("no default event: %+v", events)
		}
	})
}

// TestSlotDefaultStaysAwayWhenTaken: a request for another member during
// default_after keeps the slot; the default does not push it out.
func TestSlotDefaultStaysAwayWhenTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, `slots:
  private: {port: 30001, default: qwen, default_after: 1m, min_residency: 0s}
models:
  qwen: {engine: sim, memory: 10GiB, slot: private, idle_timeout: 5m}
  r1: {engine: sim, memory: 10GiB, slot: private, idle_timeout: 5m}
`, 100<<30)
		use(t, s, "r1")
		time.Sleep(5*time.Minute + time.Second)
		synctest.Wait()
		r["r1"].wantState(t, "stopped")
		use(t, s, "r1") // back within default_after
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		r["qwen"].wantState(t, "stopped")
		r["r1"].wantState(t, "ready")
	})
}

package sched

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// TestMaxConcurrencyInteractiveFirst: a model with max_concurrency 2 has
// two requests in flight; three batch requests and an interactive one
// wait. The first place that frees goes to the interactive one, and
// nobody takes a place on the fast path while others wait.
func TestMaxConcurrencyInteractiveFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, max_concurrency: 2}\n", 100<<30)
		use(t, s, "a")
		l1, _ := s.Acquire(context.Background(), "a")
		l2, _ := s.Acquire(context.Background(), "a")
		got := make(chan string, 8)
		var held sync.Map
		take := func(who string, p Priority) {
			l, err := s.AcquireAs(context.Background(), "a", p)
			if err != nil {
				t.Errorf("%s: %v", who, err)
				return
			}
			held.Store(who, l)
			got <- who
		}
		// The interactive one waits neither first nor last: neither a
		// queue nor a stack would give it the first place.
		for _, who := range []string{"batch1", "interactive", "batch2", "batch3"} {
			p := Batch
			if who == "interactive" {
				p = Interactive
			}
			go take(who, p)
			synctest.Wait()
		}
		if l := s.TryAcquire("a"); l != nil {
			t.Fatal("the fast path took a place while requests wait for one")
		}
		select {
		case who := <-got:
			t.Fatalf("%s got a place while two are in flight", who)
		default:
		}
		l1.Release()
		synctest.Wait()
		if who := <-got; who != "interactive" {
			t.Fatalf("the first free place went to %s, want the interactive request", who)
		}
		select {
		case who := <-got:
			t.Fatalf("%s got a place too: max_concurrency is 2", who)
		default:
		}
		l2.Release()
		synctest.Wait()
		if who := <-got; who == "interactive" {
			t.Fatalf("second place: %s", who)
		}
		if st := s.Status().Model("a"); st.Inflight != 2 || st.Queued != 2 {
			t.Errorf("inflight %d queued %d, want 2 and 2", st.Inflight, st.Queued)
		}
		held.Range(func(_, v any) bool { v.(*Lease).Release(); return true })
		synctest.Wait()
		for i := 0; i < 2; i++ {
			<-got
		}
		held.Range(func(k, v any) bool { held.Delete(k); v.(*Lease).Release(); return true })
	})
}

// TestMaxConcurrencyAfterLoad: a batch request starts a model's load; an
// interactive one and two more batch ones join the wait. With one place
// (max_concurrency 1), the interactive request has it first, although a
// batch one came before it.
func TestMaxConcurrencyAfterLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, max_concurrency: 1}\n", 100<<30)
		got := make(chan string, 4)
		for _, who := range []string{"batch1", "interactive", "batch2", "batch3"} {
			p := Batch
			if who == "interactive" {
				p = Interactive
			}
			go func() {
				l, err := s.AcquireAs(context.Background(), "a", p)
				if err != nil {
					t.Error(err)
					return
				}
				got <- who
				time.Sleep(time.Second)
				l.Release()
			}()
			synctest.Wait()
		}
		if first := <-got; first != "interactive" {
			t.Errorf("the first place after the load went to %s", first)
		}
		for i := 0; i < 3; i++ {
			<-got
		}
	})
}

// TestBatchLeavesInteractiveSlotAlone: a person chats with qwen; a batch
// request for r1 (same slot) waits until qwen has gone min_residency (1m)
// without interactive use, while an interactive request for r1 switches
// at once.
func TestBatchLeavesInteractiveSlotAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, slotConfig, 100<<30)
		use(t, s, "qwen")      // interactive
		var lastChat time.Time // the person's last chat, below
		done := make(chan time.Time, 1)
		go func() {
			l, err := s.AcquireAs(context.Background(), "r1", Batch)
			if err != nil {
				t.Error(err)
				return
			}
			done <- time.Now()
			l.Release()
		}()
		time.Sleep(50 * time.Second)
		use(t, s, "qwen") // the person goes on: a minute more
		lastChat = time.Now()
		time.Sleep(55 * time.Second)
		synctest.Wait()
		r["qwen"].wantState(t, status.Ready)
		r["r1"].wantState(t, status.Stopped)
		at := <-done
		if wait := at.Sub(lastChat); wait < time.Minute || wait > time.Minute+15*time.Second {
			t.Errorf("the batch request had r1 %s after the last chat, want min_residency (1m) plus the switch", wait)
		}
		r["qwen"].wantState(t, status.Stopped)

		// An interactive request switches back without waiting for r1's
		// batch use.
		began := time.Now()
		use(t, s, "qwen")
		if took := time.Since(began); took > 15*time.Second {
			t.Errorf("the interactive switch took %s", took)
		}
	})
}

// TestBatchSwitchGivesWay: a batch request for qwen waits for r1's
// residency (r1 is busy with batch work); an interactive request for a
// third member comes meanwhile and gets the slot first.
func TestBatchSwitchGivesWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, slotConfig+"  r2: {engine: sim, memory: 10GiB, slot: private, stop_timeout: 10m}\n", 100<<30)
		busy, err := s.AcquireAs(context.Background(), "r1", Batch)
		if err != nil {
			t.Fatal(err)
		}
		order := make(chan string, 2)
		go func() {
			l, err := s.AcquireAs(context.Background(), "qwen", Batch)
			if err == nil {
				order <- "qwen (batch)"
				l.Release()
			}
		}()
		time.Sleep(5 * time.Second) // the batch switch waits for r1's residency
		go func() {
			l, err := s.AcquireAs(context.Background(), "r2", Interactive)
			if err == nil {
				order <- "r2 (interactive)"
				time.Sleep(time.Second)
				l.Release()
			}
		}()
		time.Sleep(time.Second)
		busy.Release()
		if first := <-order; first != "r2 (interactive)" {
			t.Errorf("first: %s", first)
		}
		<-order
		_ = r
	})
}

// TestBatchDoesNotEvictInteractive: with room for one model, a batch
// request does not evict the model a person used: it waits until that
// model's idle_timeout has passed without interactive use (the model idles
// out then). An interactive request evicts it at once.
func TestBatchDoesNotEvictInteractive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, `models:
  chat: {engine: sim, memory: 60GiB, idle_timeout: 10m}
  index: {engine: sim, memory: 60GiB, idle_timeout: 10m}
  other: {engine: sim, memory: 60GiB, idle_timeout: 10m}
`, 100<<30)
		use(t, s, "chat")
		used := time.Now()
		got := make(chan time.Time, 1)
		go func() {
			l, err := s.AcquireAs(context.Background(), "index", Batch)
			if err != nil {
				t.Error(err)
				return
			}
			got <- time.Now()
			l.Release()
		}()
		time.Sleep(9 * time.Minute)
		synctest.Wait()
		r["chat"].wantState(t, status.Ready) // not evicted: still the person's
		r["index"].wantState(t, status.Stopped)
		at := <-got
		if wait := at.Sub(used); wait < 10*time.Minute || wait > 10*time.Minute+15*time.Second {
			t.Errorf("the batch request loaded index %s after the chat, want its idle_timeout (10m) plus the load", wait)
		}
		// index is now held by batch use only: an interactive request
		// evicts it without waiting.
		began := time.Now()
		use(t, s, "other")
		if took := time.Since(began); took > 15*time.Second {
			t.Errorf("the interactive request waited %s", took)
		}
		r["index"].wantState(t, status.Stopped)
	})
}

// TestWaitForAPlaceIsNotACold: a request that waited only for a
// place under max_concurrency, on a model that was ready all along, has
// waited (Waited) but is no cold start; one that waited for the load is.
func TestWaitForAPlaceIsNotACold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB, max_concurrency: 1}\n", 100<<30)
		first, err := s.Acquire(context.Background(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if !first.Cold {
			t.Error("the request that started the model is no cold start")
		}
		time.Sleep(time.Second)
		got := make(chan *Lease)
		go func() {
			l, err := s.Acquire(context.Background(), "a")
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		synctest.Wait()
		time.Sleep(time.Second)
		first.Release()
		second := <-got
		if second.Cold || second.Waited != time.Second {
			t.Errorf("a wait for a place: cold %v, waited %s; want no cold start, 1s waited", second.Cold, second.Waited)
		}
		second.Release()
	})
}

package trim

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// counting is a Quiet whose trims are counted, with a quiet time of one
// second and at most a trim every ten.
func counting() (*Quiet, *atomic.Int64) {
	n := new(atomic.Int64)
	return NewFunc(time.Second, 10*time.Second, func() { n.Add(1) }), n
}

// TestTrimsOnceQuiet: nothing is trimmed while a request is in flight,
// however long; the trim comes a second after the last one ends, once.
func TestTrimsOnceQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, n := counting()
		defer q.Stop()
		q.Begin()
		q.Begin()
		q.End()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n.Load() != 0 {
			t.Fatalf("trimmed %d times with a request in flight", n.Load())
		}
		q.End()
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		if n.Load() != 0 {
			t.Fatalf("trimmed %d times before the quiet second was over", n.Load())
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n.Load() != 1 {
			t.Fatalf("trimmed %d times a second after the last request, want 1", n.Load())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n.Load() != 1 {
			t.Fatalf("trimmed %d times while nothing happened, want 1", n.Load())
		}
	})
}

// TestRequestsPushTheTrimBack: requests that keep coming, each ending
// before the next begins, keep the gateway from being quiet.
func TestRequestsPushTheTrimBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, n := counting()
		defer q.Stop()
		for range 20 {
			q.Begin()
			time.Sleep(100 * time.Millisecond)
			q.End()
			time.Sleep(500 * time.Millisecond)
		}
		synctest.Wait()
		if n.Load() != 0 {
			t.Fatalf("trimmed %d times between requests half a second apart", n.Load())
		}
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if n.Load() != 1 {
			t.Fatalf("trimmed %d times a second after the last, want 1", n.Load())
		}
	})
}

// TestTrimsAtMostEveryInterval: a second quiet spell soon after a trim
// trims when the interval is over, not before.
func TestTrimsAtMostEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, n := counting()
		defer q.Stop()
		q.Begin()
		q.End()
		time.Sleep(time.Second) // the first trim, at 1 s
		synctest.Wait()
		q.Begin()
		q.End()
		time.Sleep(8 * time.Second) // quiet again, at 9 s
		synctest.Wait()
		if n.Load() != 1 {
			t.Fatalf("trimmed %d times within ten seconds, want 1", n.Load())
		}
		time.Sleep(2 * time.Second) // 11 s
		synctest.Wait()
		if n.Load() != 2 {
			t.Fatalf("trimmed %d times once the interval was over, want 2", n.Load())
		}
	})
}

// TestStopEndsTrims: after Stop, a quiet gateway is not trimmed; a nil
// Quiet does nothing.
func TestStopEndsTrims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, n := counting()
		q.Begin()
		q.End()
		q.Stop()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n.Load() != 0 {
			t.Fatalf("trimmed %d times after Stop", n.Load())
		}
		var off *Quiet
		off.Begin()
		off.End()
		off.Stop()
	})
}

// TestNoTrimUnderALongRequest: a request that begins inside the quiet
// second and is still in flight when it is over holds the trim off until
// a second after it ends.
func TestNoTrimUnderALongRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, n := counting()
		defer q.Stop()
		q.Begin()
		q.End()
		time.Sleep(500 * time.Millisecond)
		q.Begin()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n.Load() != 0 {
			t.Fatalf("trimmed %d times under a request in flight", n.Load())
		}
		q.End()
		time.Sleep(time.Second)
		synctest.Wait()
		if n.Load() != 1 {
			t.Fatalf("trimmed %d times a second after it ended, want 1", n.Load())
		}
	})
}

// BenchmarkBeginEnd is what a request pays: a begin and an end, from
// parallel goroutines.
func BenchmarkBeginEnd(b *testing.B) {
	q := NewFunc(time.Hour, time.Hour, func() {})
	defer q.Stop()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			q.Begin()
			q.End()
		}
	})
}

var live [][]byte

// BenchmarkRelease is a trim of a heap like gantry's after 500 streams:
// 10 MB live in 8 KiB buffers (connections' buffers), 20 MB of garbage.
func BenchmarkRelease(b *testing.B) {
	live = make([][]byte, 1280)
	for i := range live {
		live[i] = make([]byte, 8<<10)
	}
	var garbage [][]byte
	for b.Loop() {
		b.StopTimer()
		garbage = make([][]byte, 2560)
		for i := range garbage {
			garbage[i] = make([]byte, 8<<10)
		}
		garbage = nil
		b.StartTimer()
		Release()
	}
	_ = garbage
}

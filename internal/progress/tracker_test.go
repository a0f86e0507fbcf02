package progress_test

import (
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/progress"
)

func TestTrackerThrottlesWithinAPhase(t *testing.T) {
	tr := progress.NewTracker(time.Second, engine.LoadProgress())
	t0 := time.Unix(1000, 0)
	tr.Reset(t0)
	if _, ok := tr.Take(t0); ok {
		t.Fatal("a fresh load has no news")
	}
	tr.Feed("Loading safetensors checkpoint shards:   0% Completed | 0/4 [00:00<?, ?it/s]")
	s, ok := tr.Take(t0)
	if !ok || s.Phase != progress.Weights || s.Total != 4 {
		t.Fatalf("first step: %+v %v", s, ok)
	}
	tr.Feed("Loading safetensors checkpoint shards:  25% Completed | 1/4 [00:01<00:03,  1.00s/it]")
	if _, ok := tr.Take(t0.Add(100 * time.Millisecond)); ok {
		t.Fatal("the same phase within the interval must wait")
	}
	if s, ok := tr.Take(t0.Add(1100 * time.Millisecond)); !ok || s.Done != 1 {
		t.Fatalf("after the interval: %+v %v", s, ok)
	}
	tr.Feed("noise that is no step")
	if _, ok := tr.Take(t0.Add(5 * time.Second)); ok {
		t.Fatal("no new step, no news")
	}
	tr.Feed("INFO Graph capturing finished in 14 secs, took 0.21 GiB")
	if s, ok := tr.Take(t0.Add(5100 * time.Millisecond)); !ok || s.Phase != progress.Graphs {
		t.Fatalf("a new phase goes out at once: %+v %v", s, ok)
	}
	if cur, began := tr.Current(); cur.Phase != progress.Graphs || !began.Equal(t0) {
		t.Fatalf("current: %+v %v", cur, began)
	}
	tr.Reset(t0.Add(time.Minute))
	if cur, _ := tr.Current(); cur.Phase != progress.Starting {
		t.Fatalf("reset: %+v", cur)
	}
}

func TestEstimate(t *testing.T) {
	if p, eta := progress.Estimate(30*time.Second, 0); p != -1 || eta != -1 {
		t.Errorf("unknown previous load: %d %v", p, eta)
	}
	if p, eta := progress.Estimate(30*time.Second, 120*time.Second); p != 25 || eta != 90 {
		t.Errorf("a quarter of the last load: %d %v", p, eta)
	}
	if p, eta := progress.Estimate(300*time.Second, 120*time.Second); p != 99 || eta != 0 {
		t.Errorf("longer than last time: %d %v", p, eta)
	}
}

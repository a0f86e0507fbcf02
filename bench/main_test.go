package main

import (
	"os"
	"testing"
	"time"
)

func TestRotatedPutsEachWayInEachPlace(t *testing.T) {
	var seen [3][3]int // way, place
	for i := 0; i < 3; i++ {
		order := rotated(i)
		var in [3]bool
		for place, way := range order {
			if in[way] {
				t.Fatalf("round %d runs way %d twice: %v", i, way, order)
			}
			in[way] = true
			seen[way][place]++
		}
	}
	for way, places := range seen {
		for place, n := range places {
			if n != 1 {
				t.Errorf("way %d is in place %d %d times in three rounds, want once", way, place, n)
			}
		}
	}
}

func TestMedianAndPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3 1 2 = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 4 1 3 2 = %v", m)
	}
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond // descending: pct must sort
	}
	if p := pct(ds, 50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := pct(ds, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("pct sorted its argument in place")
	}
}

func TestStamp(t *testing.T) {
	ns, ok := stamp([]byte(`data: {"id":"x","sim_unix_ns":1764400000123456789,"choices":[]}`))
	if !ok || ns != 1764400000123456789 {
		t.Errorf("stamp = %d, %v", ns, ok)
	}
	if _, ok := stamp([]byte(`data: {"id":"x"}`)); ok {
		t.Error("a line without a stamp gave one")
	}
}

func TestBenchLine(t *testing.T) {
	m := benchLine.FindStringSubmatch("BenchmarkScan-2   \t      24\t  47880946 ns/op\t        23.65 peak-RSS-MB\t20367406 B/op\t  260808 allocs/op")
	if m == nil || m[1] != "47880946" || m[2] != "23.65" || m[3] != "20367406" || m[4] != "260808" {
		t.Errorf("parsed %q", m)
	}
}

func TestCPUTime(t *testing.T) {
	if cpuTime(0) != 0 {
		t.Error("pid 0 has CPU time")
	}
	before := cpuTime(os.Getpid())
	// Burn CPU until the kernel's 10 ms ticks show it, within a bound.
	x := 0
	for deadline := time.Now().Add(10 * time.Second); cpuTime(os.Getpid()) < before+20*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning did not raise the CPU time from %v (now %v)", before, cpuTime(os.Getpid()))
		}
		for i := 0; i < 1e6; i++ {
			x += i
		}
	}
	_ = x
}

package sched

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/statefile"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// TestWatchdogStopsTheNewestLoad: on unified memory, when MemAvailable
// (a fake /proc/meminfo) falls below memory.watchdog while two engines
// load, the one that began last is stopped, with an event and a diagnosis;
// the other loads on.
func TestWatchdogStopsTheNewestLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := config.Parse("t.yaml", []byte("root: "+t.TempDir()+`
memory: {reserve: 0GiB, unified: true, watchdog: 4GiB}
models:
  a: {engine: sim, memory: 10GiB}
  b: {engine: sim, memory: 10GiB}
`))
		if err != nil {
			t.Fatal(err)
		}
		var avail atomic.Int64
		avail.Store(100 << 30)
		var mu sync.Mutex
		var events []status.Event
		r := map[string]*fakeRunner{}
		s, err := New(c, Options{MemoryTotal: 100 << 30, GPU: &gpu.Facts{},
			MemInfo: func() (gpu.MemInfo, error) { return gpu.MemInfo{Total: 120 << 30, Available: avail.Load()}, nil },
			OnEvent: func(ev status.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() },
			NewRunner: func(sp RunnerSpec) (Runner, error) {
				f := &fakeRunner{m: sp.Model, opts: sp.Options, load: time.Minute, state: status.Stopped}
				r[sp.Model.Name] = f
				return f, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		s.Boot(context.Background())
		go s.Start(context.Background(), "a")
		time.Sleep(5 * time.Second)
		go s.Start(context.Background(), "b")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		r["a"].wantState(t, "starting")
		r["b"].wantState(t, "starting")

		avail.Store(2 << 30) // the box runs short
		time.Sleep(3 * time.Second)
		synctest.Wait()
		r["b"].wantState(t, "stopped")
		r["a"].wantState(t, "starting")
		st := s.Status().Model("b")
		if !strings.Contains(st.Diagnosis, "memory watchdog") || !strings.Contains(st.Diagnosis, "2GiB") {
			t.Errorf("b's diagnosis: %q", st.Diagnosis)
		}
		mu.Lock()
		found := false
		for _, ev := range events {
			if ev.Kind == status.KindMemory && ev.Model == "b" && strings.Contains(ev.Reason, "below memory.watchdog 4GiB") {
				found = true
			}
		}
		mu.Unlock()
		if !found {
			t.Errorf("no memory event for b: %+v", events)
		}
		avail.Store(100 << 30)
		time.Sleep(2 * time.Minute) // the fake loads end
	})
}

// TestWatchdogOffOnDiscreteGPUs: memory.unified false, the same shortage
// stops nothing.
func TestWatchdogOffOnDiscreteGPUs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := config.Parse("t.yaml", []byte("root: "+t.TempDir()+`
memory: {reserve: 0GiB, unified: false}
models:
  a: {engine: sim, memory: 10GiB}
`))
		if err != nil {
			t.Fatal(err)
		}
		var f *fakeRunner
		s, err := New(c, Options{MemoryTotal: 100 << 30, GPU: &gpu.Facts{Unified: true},
			MemInfo: func() (gpu.MemInfo, error) { return gpu.MemInfo{Total: 120 << 30, Available: 1 << 30}, nil },
			NewRunner: func(sp RunnerSpec) (Runner, error) {
				f = &fakeRunner{m: sp.Model, opts: sp.Options, load: time.Minute, state: status.Stopped}
				return f, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		s.Boot(context.Background())
		go s.Start(context.Background(), "a")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		f.wantState(t, "starting")
		time.Sleep(2 * time.Minute) // the fake load ends
	})
}

func TestUnifiedTotalCountsGantrysOwnEngines(t *testing.T) {
	used := int64(30 << 30)
	procs := []gpu.Proc{{PID: 501, Used: &used}, {PID: 900, Used: &used}}
	path := t.TempDir() + "/engines.json"
	if err := statefile.WriteJSON(path, map[string]supervise.Record{"qwen": {PID: 500, Token: "t"}}); err != nil {
		t.Fatal(err)
	}
	reg := supervise.OpenRegistry(path) // what the last gantry left
	mi := gpu.MemInfo{Total: 120 << 30, Available: 40 << 30}
	// pid 501 (a vLLM worker) is in engine 500's process group; 900 is not ours.
	ours := ownedGPUBytes(procs, reg, func(pid int) int { return map[int]int{501: 500, 900: 900}[pid] })
	if got := mi.Usable(ours); got != 70<<30 {
		t.Errorf("total %d GiB, want 70 (40 available + 30 of ours)", mi.Usable(ours)>>30)
	}
}

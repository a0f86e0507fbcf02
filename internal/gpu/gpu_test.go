package gpu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture returns a Runner that answers from testdata files.
func fixture(t *testing.T, gpus, apps string) Runner {
	return func(ctx context.Context, args ...string) ([]byte, error) {
		name := gpus
		if strings.HasPrefix(args[0], "--query-compute-apps") {
			name = apps
		}
		if name == "" {
			return nil, errors.New("exec: \"nvidia-smi\": executable file not found in $PATH")
		}
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".txt") {
			return nil, errors.New("nvidia-smi: exit status 9: " + string(b))
		}
		return b, nil
	}
}

const sys128G = 128501256192

func sysMem() (MemInfo, error) { return MemInfo{Total: sys128G, Available: sys128G - 8<<30}, nil }

func TestGB10UsesSystemMemory(t *testing.T) {
	f := Detect(context.Background(), fixture(t, "gb10.csv", "gb10-apps.csv"), sysMem)
	if len(f.GPUs) != 1 || !f.Unified || f.TotalBytes != sys128G || !strings.Contains(f.Source, "unified") {
		t.Fatalf("%+v", f)
	}
	g := f.GPUs[0]
	if g.MemoryTotal != nil || g.MemoryUsed != nil || g.MemoryFree != nil {
		t.Errorf("[N/A] memory became a number: %v %v %v", g.MemoryTotal, g.MemoryUsed, g.MemoryFree)
	}
	if g.SM() != 121 || g.Power == nil || *g.Power != 3.51 || *g.Temperature != 36 {
		t.Errorf("%+v", g)
	}
	if len(f.Procs) != 1 || f.Procs[0].PID != 114687 || *f.Procs[0].Used != 19135<<20 {
		t.Errorf("procs %+v", f.Procs)
	}
}

func TestH100AndH200(t *testing.T) {
	for file, want := range map[string]int64{"h100.csv": 81559 << 20, "h200.csv": 143771 << 20} {
		f := Detect(context.Background(), fixture(t, file, ""), sysMem)
		if len(f.GPUs) != 1 || f.Unified || f.TotalBytes != want || f.Source != "nvidia-smi memory.total" {
			t.Errorf("%s: %+v", file, f)
		}
		if f.GPUs[0].SM() != 90 {
			t.Errorf("%s: sm %d", file, f.GPUs[0].SM())
		}
	}
	f := Detect(context.Background(), fixture(t, "h100.csv", "h100-apps.csv"), sysMem)
	if len(f.Procs) != 1 || f.Procs[0].Name != "VLLM::EngineCore" {
		t.Errorf("procs %+v", f.Procs)
	}
}

func TestSeveralGPUs(t *testing.T) {
	f := Detect(context.Background(), fixture(t, "multi.csv", ""), sysMem)
	if len(f.GPUs) != 3 || f.TotalBytes != (81559*2+46068)<<20 {
		t.Fatalf("%+v", f)
	}
	l40 := f.GPUs[2]
	if l40.MemoryUsed != nil || l40.Utilization != nil || l40.Power != nil || l40.MemoryFree == nil {
		t.Errorf("Not Supported / [N/A] must be unknown: %+v", l40)
	}
}

func TestNoGPU(t *testing.T) {
	for _, runner := range []Runner{fixture(t, "", ""), fixture(t, "nodriver.txt", "")} {
		f := Detect(context.Background(), runner, sysMem)
		if len(f.GPUs) != 0 || f.TotalBytes != sys128G || f.Err == "" || !strings.Contains(f.Source, "no GPU") {
			t.Errorf("%+v", f)
		}
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := ParseGPUs("0, x, y\n"); err == nil {
		t.Error("short line accepted")
	}
	if _, err := ParseGPUs("0, GPU, u, d, 9.0, lots, 0, 0, 0, 0, 0\n"); err == nil {
		t.Error("bad memory accepted")
	}
	if m, err := ParseMemInfo("MemFree: 1 kB\nMemTotal:       125490484 kB\n"); err != nil || m.Total != 125490484*1024 || m.Free != 1024 {
		t.Errorf("%+v %v", m, err)
	}
	if _, err := ParseMemInfo("MemFree: 1 kB\n"); err == nil {
		t.Error("no MemTotal accepted")
	}
	if _, err := ParseMemInfo("MemTotal: lots kB\n"); err == nil {
		t.Error("a bad number accepted")
	}
}

// TestGB10MemInfo: on a Spark after a cold load, CUDA's free memory
// (MemFree) is far below what the kernel can hand out (MemAvailable), and
// what engines can use is capped at CUDA's share of the total.
func TestGB10MemInfo(t *testing.T) {
	b, err := os.ReadFile("testdata/gb10-meminfo.txt")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMemInfo(string(b))
	if err != nil {
		t.Fatal(err)
	}
	gib := func(n int64) float64 { return float64(n) / (1 << 30) }
	if g := gib(m.Total); g < 121.68 || g > 121.70 {
		t.Errorf("MemTotal %.2f GiB", g)
	}
	if gib(m.Cached) < 78 || gib(m.CUDAFree()) > 34 || gib(m.Available) < 113 {
		t.Errorf("%+v", m)
	}
	// 0.84 × 121.69 = 102.2 GiB: the cap, below MemAvailable.
	if u := gib(m.Usable(0)); u < 102.1 || u > 102.3 {
		t.Errorf("usable %.2f GiB", u)
	}
	// With gantry's own engines holding memory, what it would give back counts.
	m.Available = 40 << 30
	if u := m.Usable(30 << 30); u != 70<<30 {
		t.Errorf("usable with give-back: %.2f GiB", gib(u))
	}
}

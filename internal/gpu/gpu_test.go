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

func sysMem() (int64, error) { return sys128G, nil }

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
	if n, err := ParseMemTotal("MemFree: 1 kB\nMemTotal:       125490484 kB\n"); err != nil || n != 125490484*1024 {
		t.Errorf("%d %v", n, err)
	}
}

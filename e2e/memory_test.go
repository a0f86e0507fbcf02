package e2e

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/pagecache"
)

// TestStartEvictsTheCheckpointOnUnifiedMemory: on a unified-memory box
// (memory.unified: true here, as a GB10 is detected), a model folder read
// into the page cache is no longer resident after gantry starts the model,
// and the start says what it freed — in the model's log and as an event.
func TestStartEvictsTheCheckpointOnUnifiedMemory(t *testing.T) {
	var shard string
	d := startDaemonWith(t, func(home string) string {
		dir := filepath.Join(home, "ai", "models", "qwen-tiny")
		os.MkdirAll(dir, 0o755)
		shard = filepath.Join(dir, "model-00001-of-00001.safetensors")
		f, err := os.Create(shard)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(f, rand.Reader, 48<<20)
		f.Sync()
		f.Close()
		return `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB, unified: true}
models:
  q: {engine: sim, path: qwen-tiny, memory: 2GiB, args: [--model, e2e-evict]}
`
	})
	b, _ := os.ReadFile(shard) // the checkpoint is in the page cache, as after a copy
	_ = b
	before, err := pagecache.Resident([]string{shard})
	if err != nil || before < 32<<20 {
		t.Fatalf("resident before the start: %d bytes, %v", before, err)
	}
	if out, code := d.gantry("start", "q"); code != 0 {
		t.Fatalf("start: %s", out)
	}
	after, err := pagecache.Resident([]string{shard})
	if err != nil || after > before/8 {
		t.Errorf("resident after the start: %d of %d bytes, %v", after, before, err)
	}
	logs := d.logs("q")
	if !strings.Contains(logs, "unified memory: freed") || !strings.Contains(logs, "of q's checkpoint from the page cache") {
		t.Errorf("the log does not say what was freed:\n%s", logs)
	}
}

// TestDoctorOnUnifiedMemory: doctor shows what the kernel says and what
// CUDA would, and the total gantry chose from them.
func TestDoctorOnUnifiedMemory(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "gantry.yaml")
	os.WriteFile(cfg, []byte("root: "+filepath.Join(home, "ai")+"\nmemory: {unified: true, reserve: 1GiB, drop_caches: true}\nmodels:\n  m: {engine: sim, memory: 1GiB}\n"), 0o644)
	out, _ := run(t, home, "doctor", "--config", cfg, "--server", "http://127.0.0.1:1")
	for _, want := range []string{"MemTotal", "MemAvailable", "page cache", "CUDA would report", "engines can get", "the floor kept for the OS and driver",
		"evicted before each start", "the watchdog stops the newest load below MemAvailable 4GiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor lacks %q:\n%s", want, out)
		}
	}
}

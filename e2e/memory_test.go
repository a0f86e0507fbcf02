package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/pagecache"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/testbin"
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

// waitAfterLoad waits until gantry has dropped a model's checkpoint pages
// after its load, and returns what it recorded.
func waitAfterLoad(t *testing.T, d *daemon, model string, timeout time.Duration) status.PageCache {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := d.status().Model(model)
		if pc := st.PageCache; pc != nil && pc.AfterLoad {
			return *pc
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drop after %s's load within %s: %+v\n%s", model, timeout, st.PageCache, d.logs(model))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCheckpointLeavesThePageCacheTwice: on a unified-memory box, a
// checkpoint written a moment before the start (dirty pages, which the
// kernel does not drop) is written back and dropped before the launch; the
// engine — a process that reads its weights, as every engine does — brings
// them back into the page cache, and once it is ready gantry drops them
// again and records both figures with the load (status, log, events).
func TestCheckpointLeavesThePageCacheTwice(t *testing.T) {
	var shard string
	d := startDaemonWith(t, func(home string) string {
		dir := filepath.Join(home, "ai", "models", "fresh")
		os.MkdirAll(dir, 0o755)
		shard = filepath.Join(dir, "model.safetensors")
		f, err := os.Create(shard)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(f, rand.Reader, 48<<20)
		f.Close() // no sync: dirty, as right after a download or a copy
		engine := filepath.Join(home, "engine.sh")
		os.WriteFile(engine, []byte("#!/bin/sh\ncat \""+shard+"\" > /dev/null\nexec \"$GANTRY\" sim --port \"$PORT\" --model e2e-reads\n"), 0o755)
		port := testbin.FreePort(t)
		return fmt.Sprintf(`
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB, unified: true}
models:
  q:
    engine: command
    path: fresh
    memory: 2GiB
    port: %d
    command: [%s]
    env: {GANTRY: %s, PORT: "%d"}
`, port, engine, testbin.Gantry(t), port)
	})
	if out, code := d.gantry("start", "q"); code != 0 {
		t.Fatalf("start: %s", out)
	}
	pc := waitAfterLoad(t, d, "q", 30*time.Second)
	resident, err := pagecache.Resident([]string{shard})
	if err != nil || resident > 6<<20 {
		t.Errorf("%d MiB of the checkpoint still cached after the load (%v); gantry recorded %+v", resident>>20, err, pc)
	}
	if pc.FreedBeforeStartBytes < 40<<20 || pc.StayedBeforeStartBytes > 6<<20 {
		t.Errorf("before the start (dirty pages): %+v", pc)
	}
	if pc.FreedAfterLoadBytes < 40<<20 || pc.StayedAfterLoadBytes > 6<<20 {
		t.Errorf("after the load: %+v", pc)
	}
	if logs := d.logs("q"); !strings.Contains(logs, "after the load: freed") {
		t.Errorf("the log does not say what the drop after the load freed:\n%s", logs)
	}
}

// TestRealVLLMCheckpointLeavesThePageCache: the real vLLM (CPU) on a fake
// GB10 (memory.unified: true) reads a fresh copy of the tiny model through
// the page cache and copies the weights into its own memory; once it is
// ready, mincore finds the checkpoint's pages gone from the page cache,
// and gantry recorded what it freed.
func TestRealVLLMCheckpointLeavesThePageCache(t *testing.T) {
	bin, tiny := vllmBin(t)
	var weights string
	d := startDaemonWith(t, func(home string) string {
		dir := filepath.Join(home, "ai", "models", "tiny")
		if err := os.CopyFS(dir, os.DirFS(tiny)); err != nil {
			t.Fatal(err)
		}
		weights = filepath.Join(dir, "model.safetensors")
		return `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB, unified: true}
engines:
  vllm: {binary: "` + bin + `"}
models:
  tiny:
    engine: vllm
    runtime: native
    path: tiny
    context: 512
    start_timeout: 10m
    env: {VLLM_CPU_KVCACHE_SPACE: "1", VLLM_CPU_OMP_THREADS_BIND: nobind}
`
	})
	if out, code := d.gantry("start", "tiny"); code != 0 {
		t.Fatalf("start: %s\n%s", out, d.logs("tiny"))
	}
	pc := waitAfterLoad(t, d, "tiny", time.Minute)
	size := fileSize(t, weights)
	resident, err := pagecache.Resident([]string{weights})
	if err != nil || resident > size/8 {
		t.Errorf("%d of %d bytes of the weights still cached once vLLM was ready (%v); gantry recorded %+v", resident, size, err, pc)
	}
	if pc.FreedAfterLoadBytes < size/2 {
		t.Errorf("vLLM read its %d byte checkpoint, gantry freed %d after the load: %+v", size, pc.FreedAfterLoadBytes, pc)
	}
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("tiny", "hi")); err != nil {
		t.Errorf("chat after the drop: %v", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

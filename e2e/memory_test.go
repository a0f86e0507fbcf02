package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/pagecache"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/testbin"
)

// TestStartEvictsTheCheckpointOnUnifiedMemory: on a unified-memory box
// (memory.unified: true here, as a GB10 is detected), a model folder read
// into the page cache is no longer resident after gantry starts the model,
// and the start says what it freed — in the model's log and as a memory
// event on /api/events, whose figures match what was resident.
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
	seen := events(t, d)
	if out, code := d.gantry("start", "q"); code != 0 {
		t.Fatalf("start: %s", out)
	}
	ev := waitEvent(t, seen, 10*time.Second, func(e status.Event) bool {
		return e.Kind == status.KindMemory && e.Model == "q" && strings.HasPrefix(e.Reason, "unified memory: freed ") && strings.Contains(e.Reason, "of q's checkpoint from the page cache (")
	})
	// "freed F of q's checkpoint from the page cache (C of it was cached, S stays)"
	var freed, cached, stays string
	if _, err := fmt.Sscanf(strings.TrimPrefix(ev.Reason, "unified memory: "), "freed %s of q's checkpoint from the page cache (%s of it was cached, %s stays)", &freed, &cached, &stays); err != nil {
		t.Fatalf("the memory event: %q: %v", ev.Reason, err)
	}
	f, errF := config.ParseSize(freed)
	c, errC := config.ParseSize(cached)
	if errF != nil || errC != nil || int64(c) < before*7/8 || int64(f) < before*7/8 || f > c || ev.FreedBytes < before*7/8 {
		t.Errorf("the memory event says freed %s (freed_bytes %d) of %s cached; %s was resident before the start (%v %v)", freed, ev.FreedBytes, cached, config.FormatBytes(before), errF, errC)
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
// CUDA would, and the total gantry chose from them — exit 0, and its
// figures are /proc/meminfo's (read around the run) and agree with each
// other: the floor is MemTotal less what engines can get, which is the
// memory total, within 0.84 of MemTotal; the budget is that total less the
// reserve.
func TestDoctorOnUnifiedMemory(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "gantry.yaml")
	os.WriteFile(cfg, []byte("root: "+filepath.Join(home, "ai")+"\nmemory: {unified: true, reserve: 1GiB, drop_caches: true}\nmodels:\n  m: {engine: sim, memory: 1GiB}\n"), 0o644)
	before := readMeminfo(t)
	out, code := run(t, home, "doctor", "--config", cfg, "--server", "http://127.0.0.1:1")
	after := readMeminfo(t)
	if code != 0 {
		t.Errorf("doctor exit %d:\n%s", code, out)
	}
	for _, want := range []string{"MemTotal", "MemAvailable", "page cache", "CUDA would report", "engines can get", "the floor kept for the OS and driver",
		"evicted before each start", "the watchdog stops the newest load below MemAvailable 4GiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`(?m)^ok +memory +(\S+) total from unified memory: .*; budget (\S+) after reserve 1GiB$`).FindStringSubmatch(out)
	u := regexp.MustCompile(`(?m)^ok +unified +MemTotal (\S+), MemAvailable (\S+), page cache (\S+); CUDA would report (\S+) free \(MemFree[^)]*\); engines can get (\S+), the floor kept for the OS and driver (\S+)$`).FindStringSubmatch(out)
	if m == nil || u == nil {
		t.Fatalf("doctor's memory lines are not as expected:\n%s", out)
	}
	size := func(s string) int64 {
		v, err := config.ParseSize(s)
		if err != nil {
			t.Fatalf("doctor's figure %q: %v", s, err)
		}
		return int64(v)
	}
	total, budget := size(m[1]), size(m[2])
	memTotal, avail, cached, free, canGet, floor := size(u[1]), size(u[2]), size(u[3]), size(u[4]), size(u[5]), size(u[6])
	const round = 1 << 30 / 10 // a figure is printed to 0.1 of its unit
	near := func(what string, got, want, tol int64) {
		if got < want-tol || got > want+tol {
			t.Errorf("%s: doctor says %s, want %s (±%s)", what, config.FormatBytes(got), config.FormatBytes(want), config.FormatBytes(tol))
		}
	}
	// The kernel's figures, as /proc/meminfo said them around the run
	// (others' work on this machine moves all but MemTotal a little).
	if u[1] != config.FormatBytes(before["MemTotal"]) {
		t.Errorf("MemTotal: doctor says %s, /proc/meminfo %s", u[1], config.FormatBytes(before["MemTotal"]))
	}
	between := func(what string, got int64, key string) {
		lo, hi := min(before[key], after[key]), max(before[key], after[key])
		near(what, got, (lo+hi)/2, (hi-lo)/2+512<<20)
	}
	between("MemAvailable", avail, "MemAvailable")
	between("page cache", cached, "Cached")
	between("CUDA's free (MemFree)", free, "MemFree")
	// And with each other.
	near("engines can get (the memory total)", canGet, total, round)
	if canGet > memTotal*84/100+round || canGet > avail+round {
		t.Errorf("engines can get %s: more than MemAvailable %s or 0.84 of MemTotal %s", u[5], u[2], u[1])
	}
	near("the floor (MemTotal less what engines can get)", floor, memTotal-canGet, 2*round)
	near("the budget (the total less the 1GiB reserve)", budget, total-1<<30, 2*round)
}

// readMeminfo is /proc/meminfo in bytes.
func readMeminfo(t *testing.T) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		var k string
		var kb int64
		if n, _ := fmt.Sscanf(l, "%s %d kB", &k, &kb); n == 2 {
			m[strings.TrimSuffix(k, ":")] = kb << 10
		}
	}
	if m["MemTotal"] == 0 {
		t.Fatalf("no MemTotal in /proc/meminfo:\n%s", b)
	}
	return m
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

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// memoryLimitedCgroup makes a memory cgroup of limit bytes (swap
// included) for a daemon's containers (dockerd --cgroup-parent), removed at
// the end: under cgroup v1's memory controller, or on a unified (v2)
// hierarchy with memory.max. It fails the test where neither can be
// written (./test.sh runs as root).
func memoryLimitedCgroup(t *testing.T, name string, limit int64) string {
	t.Helper()
	// v1's memsw counts memory and swap together; v2's swap.max is swap alone.
	files, swap := []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}, limit
	dir := filepath.Join("/sys/fs/cgroup/memory", name)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil { // v2
		dir, files, swap = filepath.Join("/sys/fs/cgroup", name), []string{"memory.max", "memory.swap.max"}, 0
		os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+memory"), 0o644)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("a memory cgroup for the OOM test: %v (a writable memory cgroup hierarchy, as root, is needed)", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	if err := os.WriteFile(filepath.Join(dir, files[0]), []byte(itoa64(limit)), 0o644); err != nil {
		t.Fatalf("limit %s: %v", files[0], err)
	}
	// Swap, where there is any, must not take what memory cannot.
	os.WriteFile(filepath.Join(dir, files[1]), []byte(itoa64(swap)), 0o644)
	return "/" + name
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// TestFaultContainerOOMKilled: a container the kernel kills for memory — here
// its engine loads more than its cgroup may hold (a daemon whose
// containers live under a 96 MiB memory cgroup) — is seen as OOM-killed on
// the Engine API, and the start fails with the out-of-memory diagnosis, not
// a bare "exited".
func TestFaultContainerOOMKilled(t *testing.T) {
	parent := memoryLimitedCgroup(t, "gantry-test-oom", 96<<20)
	host := bareDockerd(t, "--cgroup-parent", parent)
	loadImageAt(t, host, vllmOpenAI)
	d := containerDaemon(t, `
  big: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, gpus: none,
        env: {STANDIN_ALLOC_MIB: "512", STANDIN_LOAD_TIME: 30s}}
`)
	out, code := d.gantry("start", "big")
	st := d.status().Model("big")
	logs, _ := d.gantry("logs", "-n", "100", "big")
	if code == 0 || !strings.Contains(logs, "OOM-killed") {
		t.Fatalf("start: exit %d\n%s\nlog:\n%s", code, out, logs)
	}
	t.Logf("gantry start big: %s\ndiagnosis: %s", out, st.Diagnosis)
	if !strings.Contains(strings.ToLower(st.Diagnosis), "memory") {
		t.Errorf("the diagnosis does not say out of memory: %q (reason %q)", st.Diagnosis, st.Reason)
	}
	ta := newTally("an OOM-killed container (the kernel kills it for memory; 503 saying OOM-killed, the out-of-memory diagnosis in its status)")
	for i := 0; i < 3; i++ {
		ta.do(context.Background(), d.url, "big", false)
	}
	record(t, ta)
	if n := ta.said("model_unavailable", "OOM-killed"); n != 3 {
		t.Errorf("%d of 3 refusals say OOM-killed; they said:\n%s", n, ta.wordsOf())
	}
}

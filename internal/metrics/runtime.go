package metrics

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// The go_* and process_* families, named, described and computed as
// client_golang v1.25's collectors.NewGoCollector() and
// NewProcessCollector() did (go_collector.go, go_collector_latest.go,
// process_collector_procfsenabled.go): a scrape shows what it showed.
// testdata/client_golang_v1.25.txt holds that collector's HELP and TYPE
// lines, which the tests compare.

// memStats are the go_memstats_* families: runtime.MemStats fields.
var memStats = []struct {
	name, help, typ string
	value           func(*runtime.MemStats) float64
}{
	{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.Alloc) }},
	{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", "counter", func(m *runtime.MemStats) float64 { return float64(m.TotalAlloc) }},
	{"go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.BuckHashSys) }},
	{"go_memstats_frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", "counter", func(m *runtime.MemStats) float64 { return float64(m.Frees) }},
	{"go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.GCSys) }},
	{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapAlloc) }},
	{"go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapIdle) }},
	{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapInuse) }},
	{"go_memstats_heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapObjects) }},
	{"go_memstats_heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapReleased) }},
	{"go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapSys) }},
	{"go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", "counter", func(m *runtime.MemStats) float64 { return float64(m.Mallocs) }},
	{"go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.MCacheInuse) }},
	{"go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.MCacheSys) }},
	{"go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.MSpanInuse) }},
	{"go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.MSpanSys) }},
	{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.NextGC) }},
	{"go_memstats_other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.OtherSys) }},
	{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.StackInuse) }},
	{"go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.StackSys) }},
	{"go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.Sys) }},
}

// runtimeSettings are the go_* gauges client_golang read from
// runtime/metrics by default.
var runtimeSettings = []struct{ name, help, sample string }{
	{"go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.", "/gc/gogc:percent"},
	{"go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.", "/gc/gomemlimit:bytes"},
	{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.", "/sched/gomaxprocs:threads"},
}

// writeGo appends the go_* families.
func writeGo(w *expo) {
	w.gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	threads, _ := runtime.ThreadCreateProfile(nil) // what pprof's threadcreate profile counts
	w.gauge("go_threads", "Number of OS threads created.", float64(threads))
	w.family(desc{"go_info", "Information about the Go environment.", "gauge", []string{"version"}}, []series{{labelKey{runtime.Version()}, 1}})

	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5) // min, 25 %, 50 %, 75 %, max
	debug.ReadGCStats(&gc)
	d := desc{"go_gc_duration_seconds", "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", "summary", nil}
	w.head(d)
	for i, q := range gc.PauseQuantiles {
		w.sample(d.name, nil, labelKey{}, "quantile", float64(i)/4, q.Seconds())
	}
	w.sample(d.name+"_sum", nil, labelKey{}, "", 0, gc.PauseTotal.Seconds())
	w.sample(d.name+"_count", nil, labelKey{}, "", 0, float64(gc.NumGC))
	w.gauge("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", float64(gc.LastGC.UnixNano())/1e9)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, m := range memStats {
		w.family(desc{m.name, m.help, m.typ, nil}, []series{{v: m.value(&ms)}})
	}
	samples := make([]metrics.Sample, len(runtimeSettings))
	for i, s := range runtimeSettings {
		samples[i].Name = s.sample
	}
	metrics.Read(samples)
	for i, s := range runtimeSettings {
		v := 0.0
		switch samples[i].Value.Kind() {
		case metrics.KindUint64:
			v = float64(samples[i].Value.Uint64())
		case metrics.KindFloat64:
			v = samples[i].Value.Float64()
		}
		w.gauge(s.name, s.help, v)
	}
}

// userHZ is the kernel's clock ticks per second in /proc's times (USER_HZ,
// 100 on every Linux gantry runs on).
const userHZ = 100

// writeProcess appends the process_* families from /proc/self, each left
// out when its file cannot be read (as client_golang did).
func writeProcess(w *expo) {
	if f := procStat(); f != nil {
		ticks := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
		w.family(desc{"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", nil}, []series{{v: (ticks(11) + ticks(12)) / userHZ}})
		w.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", ticks(20))
		w.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", ticks(21)*float64(os.Getpagesize()))
		if boot, ok := bootTime(); ok {
			w.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", boot+ticks(19)/userHZ)
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		w.gauge("process_open_fds", "Number of open file descriptors.", float64(len(fds))) // ReadDir's own included, as procfs counts
	}
	if files, space, ok := limits(); ok {
		w.gauge("process_max_fds", "Maximum number of open file descriptors.", files)
		w.gauge("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", space)
	}
	if in, out, ok := netOctets(); ok {
		w.family(desc{"process_network_receive_bytes_total", "Number of bytes received by the process over the network.", "counter", nil}, []series{{v: in}})
		w.family(desc{"process_network_transmit_bytes_total", "Number of bytes sent by the process over the network.", "counter", nil}, []series{{v: out}})
	}
}

// procStat is /proc/self/stat's fields after the command's name (which
// may hold spaces): state is [0], utime [11], stime [12], starttime [19],
// vsize [20], rss [21] (proc(5), counted from pid as 1).
func procStat() []string {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 22 {
		return nil
	}
	return f
}

// bootTime is /proc/stat's btime: when the system booted, in seconds since
// 1970.
func bootTime() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			t, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return t, err == nil
		}
	}
	return 0, false
}

// limits reads /proc/self/limits: the soft limits of open files and of
// the address space ("unlimited" is 2^64, as procfs reads it).
func limits() (files, space float64, ok bool) {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return 0, 0, false
	}
	soft := func(line string) float64 {
		f := strings.Fields(line[min(len(line), 26):]) // the name column is 26 wide
		if len(f) == 0 || f[0] == "unlimited" {
			return math.Exp2(64)
		}
		v, _ := strconv.ParseFloat(f[0], 64)
		return v
	}
	var gotFiles, gotSpace bool
	for l := range strings.Lines(string(b)) {
		switch {
		case strings.HasPrefix(l, "Max open files"):
			files, gotFiles = soft(l), true
		case strings.HasPrefix(l, "Max address space"):
			space, gotSpace = soft(l), true
		}
	}
	return files, space, gotFiles && gotSpace
}

// netOctets is /proc/self/net/netstat's IpExt InOctets and OutOctets: the
// bytes of the process's network namespace, which client_golang reports as
// the process's.
func netOctets() (in, out float64, ok bool) {
	f, err := os.Open("/proc/self/net/netstat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var names []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "IpExt:" {
			continue
		}
		if names == nil {
			names = fields // the header line comes first, the values next
			continue
		}
		for i := 1; i < len(fields) && i < len(names); i++ {
			v, _ := strconv.ParseFloat(fields[i], 64)
			switch names[i] {
			case "InOctets":
				in, ok = v, true
			case "OutOctets":
				out = v
			}
		}
		return in, out, ok
	}
	return 0, 0, false
}

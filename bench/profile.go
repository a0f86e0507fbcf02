package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func init() {
	addSection(section{id: "profile", order: 60, title: "Where gantry's CPU goes",
		about: `gantry's CPU profile (Go's pprof, sampled at 100 Hz) while it relays rounds of 500 streams, and while one ` +
			`client sends requests one after another; each function's own time (flat) summed by kind. What the kernel ` +
			`does for a read or a write is inside the system-call rows: it is the floor every relay pays, the raw relay too.`})
	register(phase{name: "profile", section: "profile", order: 32, run: profileGantry}) // after the 500 streams, before the scale phases leave thousands of connections
}

// kinds sorts a profile's functions, by their names' prefixes; the first
// that matches counts.
var kinds = []struct {
	name     string
	prefixes []string
}{
	{"system calls (read, write, epoll; the kernel's work inside)", []string{"internal/runtime/syscall", "syscall.", "runtime/internal/syscall"}},
	{"scheduler: parking, waking, finding work", []string{"runtime.futex", "runtime.usleep", "runtime.schedule", "runtime.findRunnable", "runtime.park_m",
		"runtime.ready", "runtime.gopark", "runtime.goready", "runtime.netpoll", "runtime.notes", "runtime.notew", "runtime.stealWork", "runtime.runq",
		"runtime.mcall", "runtime.execute", "runtime.wakep", "runtime.startm", "runtime.stopm", "runtime.resetspinning", "runtime.casgstatus",
		"runtime.nanotime", "runtime.procyield", "runtime.osyield", "runtime.lock", "runtime.unlock", "runtime.checkTimers", "runtime.(*timer", "runtime.(*timers"}},
	{"garbage collection and allocation", []string{"runtime.mallocgc", "runtime.gc", "runtime.scanobject", "runtime.markroot", "runtime.greyobject",
		"runtime.findObject", "runtime.(*mspan)", "runtime.(*mheap)", "runtime.(*mcache)", "runtime.(*mcentral)", "runtime.(*gcWork)", "runtime.memclr",
		"runtime.scanstack", "runtime.scanframe", "runtime.wbBuf", "runtime.bulkBarrier", "runtime.newobject", "runtime.makeslice", "runtime.growslice",
		"runtime.heapSetType", "runtime.(*gcBits", "runtime.sweepone", "runtime.(*sweepLocked", "runtime.typePointers", "runtime.(*mspan"}},
	{"net/http, bufio, textproto (the HTTP work)", []string{"net/http.", "bufio.", "net/textproto.", "net/url.", "mime."}},
	{"gantry's own code", []string{"github.com/gantryhq/gantry/"}},
	{"other (net, runtime, strings, …)", []string{""}},
}

var topLine = regexp.MustCompile(`^\s*([\d.]+)(ms|s)\s+[\d.]+%\s+[\d.]+%\s+[\d.]+(?:ms|s)\s+[\d.]+%\s+(.+)$`)

// flatByKind sums a profile's flat time by kind; top is its first lines.
func flatByKind(path string) (shares []float64, total float64, top []string, err error) {
	outb, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=100000", path).Output()
	if err != nil {
		return nil, 0, nil, fmt.Errorf("go tool pprof -top %s: %w", path, err)
	}
	shares = make([]float64, len(kinds))
	for _, l := range strings.Split(string(outb), "\n") {
		m := topLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		if m[2] == "s" {
			v *= 1000
		}
		total += v
		for k, kind := range kinds {
			if slices.ContainsFunc(kind.prefixes, func(p string) bool { return strings.HasPrefix(m[3], p) }) {
				shares[k] += v
				break
			}
		}
		if len(top) < 15 {
			top = append(top, strings.TrimRight(l, " "))
		}
	}
	if total == 0 {
		return nil, 0, nil, fmt.Errorf("no samples in %s", path)
	}
	return shares, total, top, nil
}

// profileGantry profiles gantry through rounds of 500 streams and through
// one client's requests, and writes the shares of each kind of work.
func profileGantry(e *env) error {
	dir := *pprofTo
	if dir == "" {
		dir = filepath.Join(e.dir, "pprof")
	}
	streamsPath, requestsPath := filepath.Join(dir, "profile-streams.pprof"), filepath.Join(dir, "profile-requests.pprof")
	streamRun(e.gw, 500) // warm
	done := cpuProfile(streamsPath)
	var events int64
	for i := 0; i < rounds(5); i++ {
		events += streamRound(e.gw, 500).frames
	}
	done()
	done = cpuProfile(requestsPath)
	var requests int
	for t0 := time.Now(); time.Since(t0) < map[bool]time.Duration{true: 2 * time.Second, false: 6 * time.Second}[*quick]; requests++ {
		if _, err := once(e.gw, "fast"); err != nil {
			return err
		}
	}
	done()
	s, sTotal, sTop, err := flatByKind(streamsPath)
	if err != nil {
		return err
	}
	q, qTotal, qTop, err := flatByKind(requestsPath)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| kind of work (flat time) | 500 streams: µs per event | share | 1 client: µs per request | share |\n|---|---|---|---|---|\n")
	for k, kind := range kinds {
		fmt.Fprintf(&b, "| %s | %.2f | %.0f %% | %.1f | %.0f %% |\n", kind.name,
			1000*s[k]/float64(max(events, 1)), 100*s[k]/sTotal, 1000*q[k]/float64(max(requests, 1)), 100*q[k]/qTotal)
	}
	fmt.Fprintf(&b, "| all | %.2f | | %.1f | |\n", 1000*sTotal/float64(max(events, 1)), 1000*qTotal/float64(max(requests, 1)))
	note(b.String())
	note(fmt.Sprintf("The functions with the most flat time, 500 streams (%d events), then one client (%d requests) — `go tool pprof -top`:\n\n```\n%s\n```\n\n```\n%s\n```",
		events, requests, strings.Join(sTop, "\n"), strings.Join(qTop, "\n")))
	fmt.Println(b.String())
	return memoryProfile(e, dir)
}

var memStat = regexp.MustCompile(`(?m)^# (HeapInuse|HeapIdle|HeapReleased|Stack|Sys|NextGC|MSpan|GCSys|OtherSys) = (\d+)`)

// memoryProfile looks at gantry's memory in the middle of a round of 500
// streams: the runtime's own account (heap in use, stacks, what the heap
// holds unused and has not returned), and the live heap by where it was
// allocated.
func memoryProfile(e *env, dir string) error {
	heapPath := filepath.Join(dir, "profile-heap.pprof")
	got := make(chan error, 1)
	var stats string
	go func() {
		time.Sleep(900 * time.Millisecond) // the streams are open: 64 events 20 ms apart
		err := fetch("http://"+pprofAddr+"/debug/pprof/heap?debug=1", heapPath+".txt")
		if err == nil {
			err = fetch("http://"+pprofAddr+"/debug/pprof/heap", heapPath)
		}
		got <- err
	}()
	streamRun(e.gw, 500)
	if err := <-got; err != nil {
		return err
	}
	b, err := os.ReadFile(heapPath + ".txt")
	if err != nil {
		return err
	}
	mb := map[string]float64{}
	for _, m := range memStat.FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		mb[m[1]] = v / (1 << 20)
	}
	rssNow := rss(e.pid)
	stats = fmt.Sprintf("gantry's memory with 500 streams open (MiB, from `runtime.MemStats`): heap in use %.1f, "+
		"stacks %.1f, heap idle %.1f of which returned to the system %.1f, next GC at %.1f, runtime's own (spans, GC, other) %.1f; "+
		"all the runtime holds %.1f; RSS a moment after %.1f MB.",
		mb["HeapInuse"], mb["Stack"], mb["HeapIdle"], mb["HeapReleased"], mb["NextGC"],
		mb["MSpan"]+mb["GCSys"]+mb["OtherSys"], mb["Sys"], rssNow)
	outb, err := exec.Command("go", "tool", "pprof", "-sample_index=inuse_space", "-top", "-nodecount=12", heapPath).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof -top %s: %w", heapPath, err)
	}
	var top []string
	for _, l := range strings.Split(string(outb), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "flat") || (len(top) > 0 && strings.TrimSpace(l) != "") {
			top = append(top, strings.TrimRight(l, " "))
		}
	}
	note(stats + "\n\nIts live heap then, by where it was allocated (`go tool pprof -sample_index=inuse_space -top`):\n\n```\n" +
		strings.Join(top, "\n") + "\n```")
	fmt.Println(stats)
	return nil
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// rss is the process's resident set in MB (VmRSS).
func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuTime is the CPU time, user and system, that process pid has used
// (0 for pid 0 or a process that is gone).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid == 0 || err != nil {
		return 0
	}
	// The command's name, in parentheses, may hold spaces: count the
	// fields after it. utime and stime are the line's 14th and 15th, in
	// ticks of 10 ms (USER_HZ is 100 on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

var pprofAddr string

// profile captures gantry's CPU profile for 4 s when this is the phase
// -profile-phase names.
func profile(name string) {
	if *prof == "" || *phase != name {
		return
	}
	go func() {
		kind := "profile"
		for _, k := range []string{"trace", "allocs"} {
			if strings.HasSuffix(*prof, "."+k) {
				kind = k
			}
		}
		r, err := http.Get("http://" + pprofAddr + "/debug/pprof/" + kind + "?seconds=4")
		if err != nil {
			return
		}
		defer r.Body.Close()
		f, _ := os.Create(*prof)
		io.Copy(f, r.Body)
		f.Close()
	}()
}

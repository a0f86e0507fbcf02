package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// rss is the process's resident set in MB (VmRSS).
func rss(pid int) float64 { return procStatusMB(pid, "VmRSS") }

// procStatusMB is a field of /proc/PID/status given in kB (VmRSS,
// RssAnon, RssFile), in MB; 0 when it cannot be read.
func procStatusMB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
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

var pprofAddr string // gantry's --pprof listener

// profilePhase starts gantry's CPU profile of a phase when -pprof asks for
// it; the function it returns ends it and writes DIR/<phase>.pprof.
func profilePhase(name string) (done func()) {
	if *pprofTo == "" {
		return func() {}
	}
	return cpuProfile(filepath.Join(*pprofTo, name+".pprof"))
}

// cpuProfile records gantry's CPU profile into path until done is called:
// pprof's handler takes a duration, so the profile is taken in windows of
// two seconds, merged at the end (done waits for the last window).
func cpuProfile(path string) (done func()) {
	os.MkdirAll(filepath.Dir(path), 0o755)
	stop := make(chan struct{})
	finished := make(chan []string)
	go func() {
		var parts []string
		for i := 0; ; i++ {
			part := fmt.Sprintf("%s.%d", path, i)
			if err := fetch("http://"+pprofAddr+"/debug/pprof/profile?seconds=2", part); err == nil {
				parts = append(parts, part)
			}
			select {
			case <-stop:
				finished <- parts
				return
			default:
			}
		}
	}()
	return func() {
		close(stop)
		parts := <-finished
		if len(parts) == 0 {
			fmt.Println("no CPU profile of gantry came back")
			return
		}
		merge := exec.Command("go", append([]string{"tool", "pprof", "-proto"}, parts...)...)
		f, err := os.Create(path)
		if err == nil {
			merge.Stdout = f
			err = merge.Run()
			f.Close()
		}
		if err != nil {
			fmt.Println("merging the profiles:", err)
			return
		}
		for _, p := range parts {
			os.Remove(p)
		}
		fmt.Println("gantry's CPU profile:", path)
	}
}

func fetch(url, path string) error {
	r, err := http.Get(url)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, r.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// perfCounts counts a process's system calls and context switches with
// perf until the function it returns is called, which returns the counts
// by event name; nil when perf cannot count here (not installed, or not
// allowed to trace).
func perfCounts(pid int) (stop func() map[string]float64) {
	if pid == 0 || !perfWorks() {
		return func() map[string]float64 { return nil }
	}
	cmd := exec.Command("perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter,context-switches,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,syscalls:sys_enter_splice", "-p", strconv.Itoa(pid))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if cmd.Start() != nil {
		return func() map[string]float64 { return nil }
	}
	time.Sleep(100 * time.Millisecond) // perf attaches
	return func() map[string]float64 {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		out := map[string]float64{}
		for _, l := range strings.Split(errb.String(), "\n") {
			f := strings.Split(l, ",")
			if len(f) < 3 {
				continue
			}
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				out[f[2]] = v
			}
		}
		return out
	}
}

var perfOK *bool

func perfWorks() bool {
	if perfOK == nil {
		err := exec.Command("perf", "stat", "-e", "raw_syscalls:sys_enter", "true").Run()
		perfOK = yes(err == nil)
	}
	return *perfOK
}

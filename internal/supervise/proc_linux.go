package supervise

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// groupHasLiving scans /proc for a member of the process group that is not
// a zombie. Where /proc cannot be read it answers true (kill(-pgid, 0)
// already said the group exists), so callers wait and then SIGKILL.
func groupHasLiving(pgid int) bool {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return true
	}
	return len(GroupMembers(pgid)) > 0
}

// parseStat reads the state and process group from /proc/PID/stat; the
// command name in parentheses may itself contain spaces and parentheses.
func parseStat(s string) (state string, pgrp int, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return "", 0, false
	}
	pg, err := strconv.Atoi(f[2])
	if err != nil {
		return "", 0, false
	}
	return f[0], pg, true
}

// GroupMembers lists the PIDs of the living members of a process group.
func GroupMembers(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if state, pg, ok := parseStat(string(b)); ok && pg == pgid && state != "Z" && state != "X" {
			out = append(out, pid)
		}
	}
	return out
}

// groupLeaderAlive reports whether pid runs and is not a zombie.
func groupLeaderAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	state, _, ok := parseStat(string(b))
	return ok && state != "Z" && state != "X"
}

// waitExit returns when pid, which is not gantry's child, has exited. A
// pidfd (Linux 5.3) becomes readable at the exit itself; where the kernel
// has none, the pid is polled every 100 ms.
func waitExit(pid int) {
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(fd)
		for {
			_, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if err == nil {
			return
		}
	}
	for groupLeaderAlive(pid) {
		time.Sleep(100 * time.Millisecond)
	}
}

// ProcessGroup is the process group of pid, 0 when it is gone.
func ProcessGroup(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, pg, _ := parseStat(string(b))
	return pg
}

// startTicks is when pid started, in clock ticks after boot (field 22 of
// /proc/PID/stat); 0 when it is gone.
func startTicks(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

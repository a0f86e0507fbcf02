package supervise

import (
	"os"
	"strconv"
	"strings"
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

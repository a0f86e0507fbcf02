package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// stamp says which run wrote a section: when, at which commit, on which
// machine, how busy it was, with which command.
func stamp(command string, load string) string {
	host, _ := os.Hostname()
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("Measured %s at commit %s on %s (%s, %d cores, %s memory, %s, %s); load average %s; `%s`.",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), commit(), host, cpu, runtime.NumCPU(), memTotal(), runtime.GOOS, runtime.Version(), load, command)
}

// commit is the checkout's commit, "+changes" when the tree differs from it.
func commit() string {
	b, err := exec.Command("git", "rev-parse", "--short=10", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	c := strings.TrimSpace(string(b))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " with uncommitted changes"
	}
	return c
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	var kb float64
	fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%f", &kb)
	return fmt.Sprintf("%.0f GiB", kb/(1<<20))
}

// loadAverage is the 1-minute load average, as uptime shows it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}

// maxLoad is the higher of two load averages as loadAverage writes them.
func maxLoad(a, b string) string {
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA != nil || (errB == nil && y > x) {
		return b
	}
	return a
}

func startMarker(id string) string { return "<!-- bench:" + id + " -->" }
func endMarker(id string) string   { return "<!-- /bench:" + id + " -->" }

// render is a section's generated block, markers included.
func render(s section, w *written, stampLine string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## %s\n\n", startMarker(s.id), s.title)
	if s.about != "" {
		b.WriteString(strings.TrimSpace(s.about) + "\n\n")
	}
	b.WriteString(stampLine + "\n\n")
	if len(w.rows) > 0 {
		b.WriteString("| measure | result | target | |\n|---|---|---|---|\n")
		for _, r := range w.rows {
			mark := ""
			if r.met != nil {
				mark = map[bool]string{true: "met", false: "**not met**"}[*r.met]
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.name, r.value, r.target, mark)
		}
	}
	for _, n := range w.notes {
		b.WriteString("\n" + n + "\n")
	}
	b.WriteString(endMarker(s.id))
	return b.String()
}

// writeReport puts each section this run recorded into the file at path,
// in place of its last run; a section the file lacks goes before the
// first section that comes after it, or before the history, or at the end.
func writeReport(path, command, load string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	st := stamp(command, load)
	ids := make([]string, 0, len(sections))
	for id := range sections {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return sections[a].order - sections[b].order })
	for k, id := range ids {
		w := out[id]
		if w == nil {
			continue
		}
		block := render(sections[id], w, st)
		i, j := strings.Index(text, startMarker(id)), strings.Index(text, endMarker(id))
		if i >= 0 && j > i {
			text = text[:i] + block + text[j+len(endMarker(id)):]
			continue
		}
		at := -1
		for _, later := range ids[k+1:] {
			if at = strings.Index(text, startMarker(later)); at >= 0 {
				break
			}
		}
		if at < 0 {
			at = strings.Index(text, startMarker("history"))
		}
		if at < 0 {
			text = strings.TrimRight(text, "\n") + "\n\n" + block + "\n"
		} else {
			text = text[:at] + block + "\n\n" + text[at:]
		}
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

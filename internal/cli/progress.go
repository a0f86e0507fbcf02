package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// progressView shows a starting model's progress on stderr: the load's
// phase as the engine's own lines tell it (checkpoint shards, CUDA graphs
// …), the estimate from the model's last load, else the engine's last log
// line. On a terminal it redraws one line with a bar; elsewhere it prints
// a line per phase.
type progressView struct {
	e         *env
	tty       bool
	began     time.Time
	lastShown string
	drawn     bool
}

func newProgressView(e *env) *progressView {
	return &progressView{e: e, tty: isTerminal(e.stderr), began: time.Now()}
}

// show draws m's progress if it is starting.
func (v *progressView) show(m status.ModelStatus) {
	if m.State != status.Starting {
		return
	}
	if !v.tty {
		if line := fmt.Sprintf("starting %s: %s", m.Name, phaseOf(m)); line != v.lastShown {
			fmt.Fprintln(v.e.stderr, line)
			v.lastShown = line
		}
		return
	}
	line := fmt.Sprintf("starting %s: %s", m.Name, describeProgress(m))
	if m.Progress == nil {
		line += fmt.Sprintf(" %s  %s", time.Since(v.began).Round(100*time.Millisecond), trunc(m.LastLogLine, 60))
	} else {
		line = progressBar(m.Progress.Percent, 20) + line
	}
	fmt.Fprintf(v.e.stderr, "\r\033[K%s", line)
	v.drawn = true
}

// clear removes the drawn line.
func (v *progressView) clear() {
	if v.drawn {
		fmt.Fprint(v.e.stderr, "\r\033[K")
		v.drawn = false
	}
}

// phaseOf is what a starting model is doing: the engine's load phase when
// its output shows one, else the supervisor's phase (launching, waiting for
// the port …).
func phaseOf(m status.ModelStatus) string {
	if p := m.Progress; p != nil && p.Phase != "" && p.Phase != "starting" {
		return p.Phase
	}
	return orDash(m.Phase)
}

// describeProgress is a load's progress as words: the phase's count, the
// estimate of the whole from the last load, the time it has taken.
//
//	loading weights 3/4 · 45% · 18s, about 22s left (last load 40s)
func describeProgress(m status.ModelStatus) string {
	p := m.Progress
	if p == nil {
		return phaseOf(m)
	}
	parts := []string{phaseOf(m)}
	if p.Total > 0 {
		parts[0] += fmt.Sprintf(" %d/%d", p.Done, p.Total)
	}
	if p.Percent >= 0 {
		parts = append(parts, fmt.Sprintf("%d%%", p.Percent))
	}
	t := seconds(p.ElapsedSeconds)
	if p.ETASeconds >= 0 && p.LastLoadSeconds > 0 {
		t += fmt.Sprintf(", about %s left (last load %s)", seconds(p.ETASeconds), seconds(p.LastLoadSeconds))
	}
	return strings.Join(append(parts, t), " · ")
}

// progressBar is a bar of width cells for percent (no bar when unknown).
func progressBar(percent, width int) string {
	if percent < 0 {
		return ""
	}
	n := min(percent, 100) * width / 100
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] "
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

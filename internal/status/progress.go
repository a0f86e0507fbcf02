package status

import (
	"fmt"
	"strings"
	"time"
)

// LoadPhase is what a starting model is doing: the engine's load phase when
// its output shows one, else the supervisor's phase (launching, waiting for
// the port …).
func (m ModelStatus) LoadPhase() string {
	if p := m.Progress; p != nil && p.Phase != "" && p.Phase != "starting" {
		return p.Phase
	}
	if m.Phase == "" {
		return "-"
	}
	return m.Phase
}

// LoadText is a load's progress as words: the phase's count, the
// estimate of the whole from the last load, the time it has taken.
//
//	loading weights 3/4 · 45% · 18s, about 22s left (last load 40s)
func (m ModelStatus) LoadText() string {
	p := m.Progress
	if p == nil {
		return m.LoadPhase()
	}
	parts := []string{m.LoadPhase()}
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

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// topState is what `gantry top` shows: the daemon's status, and the
// requests of the last minute (for tokens per second) and the last few.
type topState struct {
	server string
	st     status.Status
	recent []activity.Record // oldest first, at most a minute's (and topKeep)
}

// topKeep bounds the requests top remembers.
const topKeep = 2000

// add remembers a finished request.
func (t *topState) add(r activity.Record, now time.Time) {
	t.recent = append(t.recent, r)
	cut := 0
	for cut < len(t.recent) && (now.Sub(t.recent[cut].Time) > time.Minute || len(t.recent)-cut > topKeep) {
		cut++
	}
	if cut > 0 && len(t.recent)-cut < 10 {
		cut = max(0, len(t.recent)-10) // the last requests stay listed
	}
	t.recent = slices.Delete(t.recent, 0, cut)
}

// tokensPerSecond is each model's completion tokens over the last minute.
func (t *topState) tokensPerSecond(now time.Time) map[string]float64 {
	out := map[string]float64{}
	for _, r := range t.recent {
		if r.Tokens != nil && now.Sub(r.Time) <= time.Minute {
			name := r.Served
			if name == "" {
				name = r.Model
			}
			out[name] += float64(r.Tokens.Completion) / 60
		}
	}
	return out
}

// render draws the view in width × height characters: a header, the
// memory bar, one line per model (with its load's progress), and the last
// requests as far as the height allows.
func (t *topState) render(width, height int, now time.Time) []string {
	width = max(width, 40)
	var lines []string
	add := func(s string) { lines = append(lines, clip(s, width)) }
	head := fmt.Sprintf("gantry top — %s", t.server)
	if t.st.Profile != "" {
		head += "   profile " + t.st.Profile
	}
	add(head + "   " + now.Format("15:04:05") + "   q: quit")
	m := t.st.Memory
	pct := 0
	if m.BudgetBytes > 0 {
		pct = int(100 * m.ReservedBytes / m.BudgetBytes)
	}
	add(fmt.Sprintf("memory %s%s reserved of %s budget (%s total)", progressBar(pct, 30), config.FormatBytes(m.ReservedBytes),
		config.FormatBytes(m.BudgetBytes), config.FormatBytes(m.TotalBytes)))
	add("")
	add(fmt.Sprintf("%-18s %-8s %-9s %7s %7s %8s  %s", "MODEL", "ENGINE", "STATE", "IN/Q", "TOK/S", "MEMORY", "NOTE"))
	tps := t.tokensPerSecond(now)
	for _, ms := range t.st.Models {
		state := string(ms.State)
		if ms.AlwaysOn {
			state += "*"
		}
		rate := "-"
		if v := tps[ms.Name]; v > 0 {
			rate = fmt.Sprintf("%.1f", v)
		}
		note := ms.Diagnosis
		switch {
		case note != "":
		case ms.State == status.Starting && ms.Progress != nil:
			note = progressBar(ms.Progress.Percent, 10) + ms.LoadText()
		case ms.State == status.Starting || ms.State == status.Failed:
			note = strings.TrimSpace(ms.Phase + " " + ms.Reason)
		case ms.Slot != "":
			note = "slot " + ms.Slot
		}
		add(fmt.Sprintf("%-18s %-8s %-9s %7s %7s %8s  %s", clip(ms.Name, 18), ms.Engine, state,
			fmt.Sprintf("%d/%d", ms.Inflight, ms.Queued), rate, config.FormatBytes(ms.MemoryBytes), note))
	}
	room := height - len(lines) - 2
	if room > 0 && len(t.recent) > 0 {
		add("")
		add("LAST REQUESTS")
		n := min(room-1, len(t.recent))
		for i := len(t.recent) - n; i < len(t.recent); i++ {
			add(requestLine(t.recent[i]))
		}
	}
	if len(lines) > height && height > 0 {
		lines = lines[:height]
	}
	return lines
}

// requestLine is one finished request, as top and the plain output show it.
func requestLine(r activity.Record) string {
	model := r.Model
	if r.Served != "" && r.Served != r.Model {
		model += "→" + r.Served
	}
	tok := "-"
	if r.Tokens != nil {
		tok = fmt.Sprintf("%d/%d tok", r.Tokens.Prompt, r.Tokens.Completion)
	}
	line := fmt.Sprintf("%s  %-18s %-22s %3d  %-12s ttft %-7s %-7s", r.Time.Local().Format("15:04:05"), clip(model, 18),
		clip(r.Route, 22), r.Status, tok, msDur(r.TTFTMS), msDur(r.DurationMS))
	if r.TokensPerSecond > 0 {
		line += fmt.Sprintf(" %.1f tok/s", r.TokensPerSecond)
	}
	if r.Cold {
		line += " cold " + msDur(r.WaitedMS)
	}
	if r.Error != "" {
		line += " " + r.Error
	}
	return line
}

// clip cuts s to n characters (runes), marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/status"
)

func TestTopRender(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ts := &topState{server: "http://127.0.0.1:4000", st: status.Status{
		Memory: status.MemoryStatus{TotalBytes: 128 << 30, BudgetBytes: 120 << 30, ReservedBytes: 60 << 30},
		Models: []status.ModelStatus{
			{Name: "scout", Engine: "sglang", State: status.Ready, AlwaysOn: true, Inflight: 2, MemoryBytes: 60 << 30},
			{Name: "qwen", Engine: "vllm", State: status.Starting, MemoryBytes: 30 << 30,
				Progress: &status.Progress{Phase: "loading weights", Done: 3, Total: 4, Percent: 45, ETASeconds: 22, ElapsedSeconds: 18, LastLoadSeconds: 40}},
		}}}
	for i := 0; i < 30; i++ {
		ts.add(activity.Record{Time: now.Add(time.Duration(i-30) * time.Second), Model: "scout", Served: "scout", Route: "/v1/chat/completions",
			Status: 200, Tokens: &activity.Tokens{Prompt: 10, Completion: 120}}, now)
	}
	lines := ts.render(140, 20, now)
	text := strings.Join(lines, "\n")
	if len(lines) > 20 {
		t.Errorf("%d lines for a height of 20", len(lines))
	}
	for _, l := range lines {
		if len([]rune(l)) > 140 {
			t.Errorf("a line wider than 140: %q", l)
		}
	}
	for _, want := range []string{"[###############...............] 60GiB reserved of 120GiB", "ready*", "2/0", "60.0", // 30 × 120 tokens in a minute
		"[####......] loading weights 3/4 · 45%", "LAST REQUESTS", "10/120 tok"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	// Older than a minute: gone from the rate, the last ten stay listed.
	ts.add(activity.Record{Time: now.Add(5 * time.Minute), Model: "x", Status: 200}, now.Add(5*time.Minute))
	if len(ts.recent) != 10 || ts.tokensPerSecond(now.Add(5 * time.Minute))["scout"] != 0 {
		t.Errorf("after five minutes: %d kept, rate %v", len(ts.recent), ts.tokensPerSecond(now.Add(5*time.Minute)))
	}
}

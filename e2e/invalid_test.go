package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gantryhq/gantry/internal/status"
)

// TestInvalidModelIsVisible: a model `config validate` rejects — its path
// does not exist — does not stop gantry from serving the rest, but it is
// not silent either: serve logs it at start, ps shows it as invalid with
// its problem (whole, not cut), ps --json carries the problem, and the
// dashboard shows it as invalid.
func TestInvalidModelIsVisible(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  good: {engine: sim, memory: 1GiB}
  lost: {engine: vllm, runtime: native, path: nowhere/qwen3-8b, memory: 8GiB}
`)
	if out, code := run(t, d.home, "config", "validate", "--config", d.config); code != 1 || !strings.Contains(out, "nowhere/qwen3-8b does not exist") {
		t.Fatalf("config validate: exit %d\n%s", code, out)
	}
	if !strings.Contains(d.out.String(), "model is invalid") || !strings.Contains(d.out.String(), "nowhere/qwen3-8b does not exist") {
		t.Errorf("serve said nothing at start about the invalid model:\n%s", d.out.String())
	}
	out, _ := d.gantry("ps")
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "lost ") {
			line = l
		}
	}
	if !strings.Contains(line, " invalid ") || !strings.Contains(line, "invalid: ") {
		t.Errorf("ps does not show lost as invalid:\n%s", out)
	}
	if !strings.Contains(out, "lost: invalid: ") || !strings.Contains(out, "does not exist — correct path:") {
		t.Errorf("ps does not show the whole problem:\n%s", out)
	}
	js, _ := d.gantry("ps", "--json")
	var st status.Status
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Models {
		if m.Name == "lost" && (m.State != "stopped" || !strings.Contains(m.Invalid, "does not exist")) {
			t.Errorf("ps --json: state %q invalid %q", m.State, m.Invalid)
		}
		if m.Name == "good" && m.Invalid != "" {
			t.Errorf("good is invalid: %q", m.Invalid)
		}
	}

	ctx := browser(t)
	step(t, d, ctx, chromedp.Navigate(d.url+"/"))
	step(t, d, ctx, chromedp.WaitVisible(`tr[data-model="lost"] .badge.invalid`))
	note := step(t, d, ctx, chromedp.Text(`tr[data-model="lost"] td.note`))
	if !strings.Contains(note, "does not exist") {
		t.Errorf("the dashboard's note for lost: %q", note)
	}
}

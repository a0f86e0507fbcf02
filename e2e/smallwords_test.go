package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// TestSmallWords: the messages a user meets on the first day say what is
// true and what to do — stopping a model that is not running says so; an
// unknown model's 404 offers the name meant and lists the presets too;
// switching a slot to a model outside it lists the slot's members; an
// empty profile says it is empty; a stopped model has no "ready" phase.
func TestSmallWords(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  qwen3-8b: {engine: sim, memory: 1GiB, slot: private}
  r1-8b: {engine: sim, memory: 1GiB, slot: private}
  scout: {engine: sim, memory: 1GiB}
slots:
  private: {port: PORTSLOT}
presets:
  scout-fast: {model: scout, set: {temperature: 0.2}}
profiles:
  quiet: {always_on: []}
`)
	out, code := d.gantry("stop", "scout")
	if code != 0 || !strings.Contains(out, "scout was not running") {
		t.Errorf("stop of a stopped model: exit %d\n%s", code, out)
	}
	st, body := post(t, d.url+"/v1/chat/completions", `{"model":"qwen3-8","messages":[{"role":"user","content":"hi"}]}`)
	if st != 404 || !strings.Contains(body, `did you mean \"qwen3-8b\"?`) || !strings.Contains(body, "scout-fast") {
		t.Errorf("an unknown model: %d %s", st, body)
	}
	out, code = d.gantry("switch", "private", "scout")
	if code == 0 || !strings.Contains(out, "scout is not a member of slot private (its members: qwen3-8b, r1-8b)") {
		t.Errorf("switch to a non-member: exit %d\n%s", code, out)
	}
	out, _ = d.gantry("profile")
	if !strings.Contains(out, "quiet: always-on none (an empty profile") {
		t.Errorf("profile:\n%s", out)
	}
	// A model that was ready and is stopped shows no phase of its last probe.
	if out, code := d.gantry("start", "scout"); code != 0 {
		t.Fatalf("start: %s", out)
	}
	if out, code := d.gantry("stop", "scout"); code != 0 || !strings.Contains(out, "scout stopped") {
		t.Errorf("stop of a running model: exit %d\n%s", code, out)
	}
	d.waitState("scout", "stopped", 10*time.Second)
	js, _ := d.gantry("ps", "--json")
	var s status.Status
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Models {
		if m.State == status.Stopped && m.Phase != "" {
			t.Errorf("%s is stopped with phase %q", m.Name, m.Phase)
		}
	}
}

package gateway

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCutStreamErrorIsJSON: the event that ends a stream cut short is
// JSON whatever its message holds. The message carries the engine's last
// log line, which supervise cuts at 300 bytes: a tqdm bar cut inside a █
// (three bytes in UTF-8) left "\xe2\x96", which a %q-formatted event
// carried as an escape no JSON parser takes.
func TestCutStreamErrorIsJSON(t *testing.T) {
	bar := strings.Repeat("█", 120)[:299] // 99 bars and two bytes of the 100th
	msg := "the engine of m failed: unexpected EOF; its state is failed; last log line: Loading safetensors: " + bar
	w := httptest.NewRecorder()
	cutShort(w, true, msg)
	payload, ok := strings.CutPrefix(w.Body.String(), "data: ")
	if !ok || !strings.HasSuffix(payload, "\n\n") {
		t.Fatalf("not one server-sent event: %q", w.Body.String())
	}
	var ev struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		t.Fatalf("the error event is not JSON (%v): %q", err, payload)
	}
	if !strings.HasPrefix(ev.Error.Message, "the engine of m failed: unexpected EOF") || !strings.Contains(ev.Error.Message, "█") ||
		ev.Error.Type != "server_error" || ev.Error.Code != "upstream_error" {
		t.Errorf("event %+v", ev.Error)
	}
}

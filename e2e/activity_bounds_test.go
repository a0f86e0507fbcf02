package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
)

// TestActivityLogSurvivesHostileNames: twenty requests naming a 1.5 MiB
// model (which made a 31.5 MB segment, after which every activity query
// answered 500 "token too long") are recorded cut and marked; the log
// answers before and after a restart, with the real requests in it; a
// segment an older gantry left with such a line is read around (the line
// skipped and counted), and one past keep_days goes whatever it holds.
func TestActivityLogSurvivesHostileNames(t *testing.T) {
	d := startDaemonWith(t, func(home string) string {
		dir := filepath.Join(home, "ai", "state", "activity")
		os.MkdirAll(dir, 0o700)
		now := time.Now().UTC()
		line := func(model string, at time.Time) string {
			return fmt.Sprintf(`{"time":%q,"route":"/v1/chat/completions","model":%q,"served":"m","status":200}`+"\n", at.Format(time.RFC3339Nano), model)
		}
		recent := filepath.Join(dir, fmt.Sprintf("activity-%020d.jsonl", now.Add(-time.Hour).UnixNano()))
		os.WriteFile(recent, []byte(line("before", now.Add(-time.Hour))+line(strings.Repeat("x", 2<<20), now.Add(-time.Hour))), 0o600)
		old := now.AddDate(0, 0, -40)
		stale := filepath.Join(dir, fmt.Sprintf("activity-%020d.jsonl", old.UnixNano()))
		os.WriteFile(stale, []byte(line(strings.Repeat("y", 2<<20), old)), 0o600)
		os.Chtimes(stale, old, old)
		return `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
activity: {keep_days: 30}
models:
  m: {engine: sim, memory: 1GiB, mode: always-on}
`
	})
	d.waitState("m", "ready", 30*time.Second)
	huge := strings.Repeat("q", 1536<<10)
	for i := 0; i < 20; i++ {
		resp, err := http.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"`+huge+`","messages":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a real request: %d", resp.StatusCode)
	}
	check := func(when string) {
		t.Helper()
		var res activity.Result
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(d.url + "/api/activity?limit=100")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || json.Unmarshal(b, &res) != nil {
				t.Fatalf("%s: /api/activity %d %.300s", when, resp.StatusCode, b)
			}
			if len(res.Records) >= 22 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		var cut, real int
		for _, r := range res.Records {
			switch {
			case r.Cut && len(r.Model) <= activity.MaxName && strings.HasPrefix(r.Model, "qqq"):
				cut++
			case r.Model == "m" && r.Status == 200, r.Model == "before":
				real++
			default:
				t.Errorf("%s: record %.200s", when, r.Model)
			}
		}
		if cut != 20 || real != 2 || res.Skipped != 1 {
			t.Errorf("%s: %d cut records, %d real ones, %d lines skipped", when, cut, real, res.Skipped)
		}
	}
	check("running")
	d.stop()
	d = d.again()
	check("after a restart")
	var size int64
	files, _ := filepath.Glob(filepath.Join(d.home, "ai", "state", "activity", "*"))
	for _, f := range files {
		st, _ := os.Stat(f)
		size += st.Size()
	}
	if len(files) != 2 || size > 2<<20+64<<10 {
		t.Errorf("the activity folder holds %d files of %d bytes (the stale one should be gone, the new one small)", len(files), size)
	}
}

package diagnose_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/diagnose"
)

// TestRealFailureLogs runs the diagnosis on failure logs of real engines,
// each from a public issue tracker (the file's "# source:" line says
// which). Every file names the rule it must match (# want:) and a part of
// the line a user must be shown (# headline:) — the exception and where it
// was raised, not the traceback's last frame.
func TestRealFailureLogs(t *testing.T) {
	files, _ := filepath.Glob("testdata/logs/*.log")
	if len(files) < 12 {
		t.Fatalf("only %d real logs", len(files))
	}
	engines := map[string]int{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			meta := map[string]string{}
			var lines []string
			for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
				if k, v, ok := strings.Cut(strings.TrimPrefix(l, "# "), ": "); ok && strings.HasPrefix(l, "# ") {
					meta[k] = v
					continue
				}
				lines = append(lines, l)
			}
			if meta["source"] == "" || meta["want"] == "" || meta["engine"] == "" {
				t.Fatalf("the file lacks # source:, # engine: or # want: (%v)", meta)
			}
			engines[meta["engine"]]++
			ds := scan(lines, diagnose.Context{Engine: meta["engine"], Quant: meta["quant"], Port: 8000, Unified: meta["unified"] == "true"})
			if len(ds) == 0 || ds[0].Rule != meta["want"] {
				t.Errorf("diagnosis %+v, want rule %s", ds, meta["want"])
			}
			if h := diagnose.Headline(lines); !strings.Contains(h, meta["headline"]) {
				t.Errorf("headline %q, want it to contain %q", h, meta["headline"])
			}
		})
	}
	for _, e := range []string{"vllm", "sglang", "llamacpp", "ollama"} {
		if engines[e] < 3 {
			t.Errorf("%d real logs of %s, want at least 3", engines[e], e)
		}
	}
}

// TestHeadlineSkipsGantryAndFrames: the line a failure shows is the
// engine's, never gantry's own mark, and for a traceback the exception.
func TestHeadlineSkipsGantryAndFrames(t *testing.T) {
	lines := []string{
		"[gantry] starting m (start 1): vllm serve /m",
		"Traceback (most recent call last):",
		`  File "/usr/lib/python3.12/threading.py", line 1075, in _bootstrap_inner`,
		"    self.run()",
		"KeyError: 'model_type'",
		"[gantry] pid 4242 (process group 4242)",
	}
	if h := diagnose.Headline(lines); h != "KeyError: 'model_type' (raised in threading.py:1075, in _bootstrap_inner)" {
		t.Errorf("headline %q", h)
	}
	if h := diagnose.Headline([]string{"loading", "[gantry] pid 7 (process group 7)"}); h != "loading" {
		t.Errorf("headline %q", h)
	}
}

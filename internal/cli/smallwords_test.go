package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnknownVerbSaysWhatWasMeant: `gantry validate` points at `gantry
// config validate`, a typo at the verb it is closest to.
func TestUnknownVerbSaysWhatWasMeant(t *testing.T) {
	for verb, want := range map[string]string{
		"validate": "did you mean `gantry config validate`?",
		"stat":     "did you mean `gantry start`?",
		"swich":    "did you mean `gantry switch`?",
		"frobnic":  "(gantry help lists them)",
	} {
		var out bytes.Buffer
		err := Run(context.Background(), []string{verb}, &out, &out)
		if ExitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("gantry %s: exit %d, %v; want %q", verb, ExitCode(err), err, want)
		}
	}
}

// TestUnitsUser: `gantry units --user NAME` runs gantry (and with
// --per-model each engine) as that user; a name systemd would not take is
// refused.
func TestUnitsUser(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gantry.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:4000\nroot: "+dir+"\nmodels:\n  m: {engine: sim, memory: 1GiB}\n"), 0o644)
	out := filepath.Join(dir, "units")
	var buf bytes.Buffer
	if err := Run(context.Background(), []string{"units", "--config", cfg, "--out", out, "--per-model", "--user", "spark"}, &buf, &buf); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	for _, f := range []string{"gantry.service", "gantry-m.service"} {
		b, _ := os.ReadFile(filepath.Join(out, f))
		if !strings.Contains(string(b), "[Service]\n") || !strings.Contains(string(b), "\nUser=spark\n") {
			t.Errorf("%s has no User=spark:\n%s", f, b)
		}
	}
	err := Run(context.Background(), []string{"units", "--config", cfg, "--user", "bad user;rm"}, &buf, &buf)
	if ExitCode(err) != 2 {
		t.Errorf("a bad user name: exit %d, %v", ExitCode(err), err)
	}
}

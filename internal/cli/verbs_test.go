package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/gguf"
)

// TestDoctorRunsTheSameValidation: a config that `config validate`
// rejects is never "valid" to doctor.
func TestDoctorRunsTheSameValidation(t *testing.T) {
	cfg := "testdata/config/missing-model-files.yaml"
	var vout, dout bytes.Buffer
	verr := Run(context.Background(), []string{"config", "validate", "--config", cfg}, &vout, &vout)
	derr := Run(context.Background(), []string{"doctor", "--config", cfg, "--server", "http://127.0.0.1:1"}, &dout, &dout)
	if ExitCode(verr) != 1 || ExitCode(derr) != 1 {
		t.Errorf("validate exit %d, doctor exit %d; want both 1", ExitCode(verr), ExitCode(derr))
	}
	if strings.Contains(dout.String(), "valid (") || !strings.Contains(dout.String(), "does not exist") {
		t.Errorf("doctor:\n%s", dout.String())
	}
}

// TestInspectExitsOneWhenUnservable: a GGUF whose tensors run past the end
// of the file is reported with the reason, and inspect fails.
func TestInspectExitsOneWhenUnservable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tiny.gguf")
	if _, err := gguf.TinyLlama(p, gguf.Tiny{}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if err := os.Truncate(p, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Run(context.Background(), []string{"inspect", p, "--config", "/nonexistent.yaml"}, &out, &out)
	if ExitCode(err) != 1 || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("exit %d, err %v\n%s", ExitCode(err), err, out.String())
	}
	if strings.Contains(out.String(), "no model files to read") {
		t.Errorf("says there are no files although there is one:\n%s", out.String())
	}
	// The whole file inspects fine and exits 0.
	if _, err := gguf.TinyLlama(p, gguf.Tiny{}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Run(context.Background(), []string{"inspect", p, "--config", "/nonexistent.yaml"}, &out, &out); err != nil {
		t.Errorf("a good file: %v\n%s", err, out.String())
	}
}

package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportKubernetesVerb: manifests on stdout, every note on stderr; a
// model that cannot be exported refuses the whole export (exit 1, nothing
// on stdout); a wrong command line is a usage error.
func TestExportKubernetesVerb(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "g.yaml")
	os.WriteFile(cfg, []byte(`models:
  a: {engine: vllm, runtime: docker, path: m, port: 30500, memory: 1GiB, idle_timeout: 5m}
  s: {engine: sim, port: 30501, memory: 1GiB}
`), 0o644)
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"export", "kubernetes", "--config", cfg, "--models", "a"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if !strings.HasPrefix(out.String(), "# Written by `gantry export kubernetes`") || !strings.Contains(out.String(), "kind: InferencePool") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "note: idle timeouts (a 5m0s)") {
		t.Errorf("stderr lacks the idle timeout note:\n%s", errb.String())
	}
	out.Reset()
	errb.Reset()
	err = Run(context.Background(), []string{"export", "kubernetes", "--config", cfg}, &out, &errb)
	if ExitCode(err) != 1 || !strings.Contains(err.Error(), "s: runtime native, engine sim: no container image") || out.Len() > 0 {
		t.Errorf("refusal: exit %d, %v, stdout %q", ExitCode(err), err, out.String())
	}
	err = Run(context.Background(), []string{"export", "helm", "--config", cfg}, &out, &errb)
	if ExitCode(err) != 2 {
		t.Errorf("export helm: exit %d, %v", ExitCode(err), err)
	}
}

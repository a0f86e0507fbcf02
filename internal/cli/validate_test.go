package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConfigValidateGolden runs `gantry config validate` on every config in
// testdata/config and compares its output and exit code with the golden
// file beside it (rewrite with -update).
func TestConfigValidateGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/config/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d test configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out bytes.Buffer
			err := Run(context.Background(), []string{"config", "validate", "--config", f}, &out, &out)
			if err != nil && err.Error() != "" {
				out.WriteString("error: " + err.Error() + "\n")
			}
			got := out.String() + "exit: " + strconv.Itoa(ExitCode(err)) + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			if strings.HasPrefix(filepath.Base(f), "valid") != (ExitCode(err) == 0) {
				t.Errorf("exit code %d", ExitCode(err))
			}
		})
	}
}

// TestValidateJSONHidesSecrets: config validate --json prints the
// effective config with the secrets in args and command hidden as ps
// hides them, and no URL's password (it printed args as written).
func TestValidateJSONHidesSecrets(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gantry.yaml")
	os.WriteFile(cfg, []byte(`
root: `+dir+`
services: {ui: {url: "http://admin:pw-service-9@127.0.0.1:8080"}}
models:
  a: {engine: sim, memory: 1GiB, args: [--api-key, sk-secret-in-args, --hf-token=hf_secret_in_args, --port-offset, "1"]}
  c: {engine: command, memory: 1GiB, port: 30990, command: [/bin/srv, --admin-password, pw-in-command]}
`), 0o644)
	var out bytes.Buffer
	err := Run(context.Background(), []string{"config", "validate", "--json", "--config", cfg}, &out, &out)
	got := out.String()
	for _, secret := range []string{"sk-secret-in-args", "hf_secret_in_args", "pw-in-command", "pw-service-9", "admin:"} {
		if strings.Contains(got, secret) {
			t.Errorf("config validate --json shows %q:\n%s", secret, got)
		}
	}
	for _, kept := range []string{`"--api-key"`, `"***"`, `"--hf-token=***"`, `"--port-offset"`, `"http://127.0.0.1:8080"`} {
		if !strings.Contains(got, kept) {
			t.Errorf("missing %s (err %v):\n%s", kept, err, got)
		}
	}
}

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

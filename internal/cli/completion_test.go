package cli

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestCompletionScript(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"completion", "bash"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"serve", "switch", "inspect", "__names models"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("script lacks %q", v)
		}
	}
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(out.String())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v %s", err, b)
	}
	t.Setenv("HOME", t.TempDir()) // no config: the demo's names
	t.Setenv("GANTRY_CONFIG", "")
	out.Reset()
	if err := Run(context.Background(), []string{"__names", "models"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(out.String()); strings.Join(got, " ") != "default demo-chat demo-embed demo-fast" {
		t.Errorf("names %q", got)
	}
}

package group

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/config"
)

// TestIdentity: a model's commit comes from its folder's record; two
// boxes that both know a commit (or an image) must agree on it.
func TestIdentity(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "models", "llama", "m")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, ".gantry-source.json"), []byte(`{"repo":"org/m","commit":"aaaa","complete":true}`), 0o644)
	cfg, err := config.Parse("c.yaml", []byte("root: "+root+"\nmodels:\n  m: {engine: sim, memory: 1GiB, path: llama/m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := IdentityOf(context.Background(), cfg, cfg.Models["m"], nil)
	if id.Commit != "aaaa" || id.Image != "" {
		t.Errorf("%+v", id)
	}
	for _, c := range []struct {
		mine, leader Identity
		want         string
	}{
		{Identity{Commit: "aaaa"}, Identity{Commit: "aaaa"}, ""},
		{Identity{Commit: "aaaa"}, Identity{}, ""}, // the leader's files have no record
		{Identity{Commit: "bbbb"}, Identity{Commit: "aaaa"}, "the leader's files are commit aaaa, this box's are commit bbbb"},
		{Identity{Image: "sha256:2"}, Identity{Image: "sha256:1"}, "the leader's image is sha256:1, this box's is sha256:2"},
	} {
		if got := c.mine.Mismatch(c.leader); !strings.Contains(got, c.want) || (c.want == "") != (got == "") {
			t.Errorf("%+v vs %+v: %q", c.mine, c.leader, got)
		}
	}
}

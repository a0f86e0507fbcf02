package group

import (
	"context"
	"path/filepath"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/hfcache"
)

// Identity is what one box's rank of a model runs: the commit of its
// files and the image's digest. Every box of a group must run the same;
// "" is unknown (files with no record, a native engine), and an unknown
// value is not compared.
type Identity struct {
	Commit string `json:"commit,omitempty"`
	Image  string `json:"image,omitempty"`
}

// IdentityOf reads m's identity on this box: the commit in its folder's
// .gantry-source.json (or the Hugging Face cache's snapshot), and, for a
// docker-runtime model, its image's digest (its ID when it has none) as
// docker knows it (d nil: unknown).
func IdentityOf(ctx context.Context, cfg *config.Config, m *config.Model, d *container.Client) Identity {
	var id Identity
	if p := cfg.ModelPath(m); p != "" {
		if _, err := hfcache.ParseRef(m.Path); err == nil {
			host, rel := cfg.ModelMount(m)
			if snap := filepath.Join(host, rel); filepath.Base(filepath.Dir(snap)) == "snapshots" {
				id.Commit = filepath.Base(snap)
			}
		} else if src, err := fetch.ReadSource(p); err == nil {
			id.Commit = src.Commit
		} else if src, err := fetch.ReadSource(filepath.Dir(p)); err == nil { // a GGUF file's folder
			id.Commit = src.Commit
		}
	}
	if m.Runtime == config.RuntimeDocker && m.Image != "" && d != nil {
		if im, err := d.InspectImage(ctx, m.Image); err == nil && im.Present {
			id.Image = im.Digest
			if id.Image == "" {
				id.Image = im.ID
			}
		}
	}
	return id
}

// Mismatch says how two boxes' identities differ ("" when they agree on
// everything both know).
func (id Identity) Mismatch(leader Identity) string {
	switch {
	case id.Commit != "" && leader.Commit != "" && id.Commit != leader.Commit:
		return "the leader's files are commit " + leader.Commit + ", this box's are commit " + id.Commit
	case id.Image != "" && leader.Image != "" && id.Image != leader.Image:
		return "the leader's image is " + leader.Image + ", this box's is " + id.Image
	}
	return ""
}

package plan

import (
	"errors"
	"os"
	"path/filepath"
	"sort"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/hfcache"
	"github.com/gantryhq/gantry/internal/inventory"
)

// Row is one line of `gantry models --json`: a model on disk, in the
// config, or both, and whether it is served.
type Row struct {
	Name       string           `json:"name"`
	Path       string           `json:"path,omitempty"`
	OnDisk     bool             `json:"on_disk"`
	Configured bool             `json:"configured"`
	Served     string           `json:"served"` // state from the daemon, "unknown" when it is not reachable
	Engine     string           `json:"engine,omitempty"`
	Quant      string           `json:"quantization,omitempty"`
	SizeBytes  int64            `json:"weight_bytes,omitempty"`
	Estimate   int64            `json:"estimate_bytes,omitempty"`
	Problems   []string         `json:"problems,omitempty"`
	Inventory  *inventory.Model `json:"inventory,omitempty"`
	// Repo and Commit say where the files came from: a download's
	// .gantry-source.json, or the Hugging Face cache's snapshot.
	Repo   string `json:"repo,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Source is where the files lie: models (<root>/models) or hf-cache.
	Source string `json:"source,omitempty"`
}

// Inventory joins the models on disk under <root>/models and in the
// Hugging Face cache, the configured ones and their served state (served
// nil: unknown, gantry not reachable).
func Inventory(c *config.Config, box Box, served map[string]string) ([]Row, error) {
	disk, err := inventory.Scan(filepath.Join(c.Root, "models"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	origin := map[string]Row{}
	for _, m := range disk {
		dir := m.Path
		if m.Format == "gguf" {
			dir = filepath.Dir(m.Path) // a GGUF file's record is in its folder
		}
		if src, err := fetch.ReadSource(dir); err == nil {
			origin[filepath.Clean(m.Path)] = Row{Repo: src.Repo, Commit: src.Commit, Source: "models"}
		}
	}
	cached, err := cacheModels(hfcache.Dir(os.Getenv))
	if err != nil {
		return nil, err
	}
	for _, cm := range cached {
		disk = append(disk, cm.model)
		origin[filepath.Clean(cm.model.Path)] = cm.row
	}
	byPath := map[string]*inventory.Model{}
	for _, m := range disk {
		byPath[filepath.Clean(m.Path)] = m
	}
	plans := Make(c, box, func(p string) (*inventory.Model, error) {
		if m, ok := byPath[filepath.Clean(p)]; ok {
			return m, nil
		}
		return inventory.Inspect(p)
	})
	rows := []Row{}
	used := map[string]bool{}
	for _, name := range c.ModelNames() {
		m := c.Models[name]
		r := Row{Name: name, Configured: true, Engine: m.Engine, Served: "unknown", Estimate: plans[name].Bytes}
		if served != nil {
			r.Served = served[name]
		}
		if p := c.ModelPath(m); p != "" {
			r.Path = p
			if inv, ok := byPath[filepath.Clean(p)]; ok {
				r.OnDisk, r.Inventory = true, inv
				used[filepath.Clean(p)] = true
				o := origin[filepath.Clean(p)]
				r.Repo, r.Commit, r.Source = o.Repo, o.Commit, o.Source
			} else if inv := plans[name].Info; inv != nil {
				r.OnDisk, r.Inventory = true, inv
			}
		}
		if r.Inventory != nil {
			r.Quant, r.SizeBytes, r.Problems = r.Inventory.Quant.String(), r.Inventory.WeightBytes, r.Inventory.Problems
		}
		rows = append(rows, r)
	}
	for _, m := range disk {
		if used[filepath.Clean(m.Path)] {
			continue
		}
		est := One(c, &config.Model{Name: m.Name, Path: m.Path, Engine: GuessEngine(m)}, box,
			func(string) (*inventory.Model, error) { return m, nil })
		o := origin[filepath.Clean(m.Path)]
		rows = append(rows, Row{Name: m.Name, Path: m.Path, OnDisk: true, Served: "-", Quant: m.Quant.String(),
			SizeBytes: m.WeightBytes, Estimate: est.Bytes, Problems: m.Problems, Inventory: m,
			Repo: o.Repo, Commit: o.Commit, Source: o.Source})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Configured != rows[j].Configured {
			return rows[i].Configured
		}
		return rows[i].Name < rows[j].Name
	})
	return rows, nil
}

// GuessEngine is the seed's choice for a model found on disk: the engine
// whose descriptor serves its format by default (SGLang for checkpoints,
// llama.cpp for GGUF files).
func GuessEngine(m *inventory.Model) string { return engine.ForFormat(m.Format) }

type cachedModel struct {
	model *inventory.Model
	row   Row
}

// cacheModels reads the Hugging Face cache's snapshots as models: a
// snapshot of a Hugging Face folder is one, each GGUF file of a snapshot
// one. Their names are what a config's path: takes (hf:org/name@ref, the
// commit when no ref points at it).
func cacheModels(cache string) ([]cachedModel, error) {
	snaps, err := hfcache.Snapshots(cache)
	if err != nil {
		return nil, err
	}
	var out []cachedModel
	for _, s := range snaps {
		rev := s.Commit
		if len(s.Refs) > 0 {
			rev = s.Refs[0]
		}
		name := hfcache.Prefix + s.Repo + "@" + rev
		row := Row{Repo: s.Repo, Commit: s.Commit, Source: "hf-cache"}
		m, err := inventory.Inspect(s.Path)
		if err == nil {
			m.Name = name
			out = append(out, cachedModel{m, row})
			continue
		}
		ggufs, _ := inventory.Scan(s.Path)
		for _, g := range ggufs {
			g.Name = name + "/" + g.Name
			out = append(out, cachedModel{g, row})
		}
		if len(ggufs) == 0 {
			out = append(out, cachedModel{&inventory.Model{Name: name, Path: s.Path, Problems: []string{err.Error()}}, row})
		}
	}
	return out, nil
}

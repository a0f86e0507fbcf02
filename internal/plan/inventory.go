package plan

import (
	"errors"
	"os"
	"path/filepath"
	"sort"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
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
}

// Inventory joins the models on disk under <root>/models, the configured
// ones and their served state (served nil: unknown, gantry not reachable).
func Inventory(c *config.Config, box Box, served map[string]string) ([]Row, error) {
	disk, err := inventory.Scan(filepath.Join(c.Root, "models"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
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
		rows = append(rows, Row{Name: m.Name, Path: m.Path, OnDisk: true, Served: "-", Quant: m.Quant.String(),
			SizeBytes: m.WeightBytes, Estimate: est.Bytes, Problems: m.Problems, Inventory: m})
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

// Package recipes is a small catalogue of models known to work on a DGX
// Spark: for each, the Hub repository (and a GGUF's quantization), the
// engine, image, flags and context to serve it with, and the sources that
// say so (NVIDIA's Spark playbooks, the engines' docs, the seed). One YAML
// file per recipe under catalog/, embedded in the binary.
package recipes

import (
	"bytes"
	"embed"
	"fmt"
	"path"
	"sort"

	"go.yaml.in/yaml/v3"
)

//go:embed catalog/*.yaml
var catalog embed.FS

// Recipe is one catalogue entry.
type Recipe struct {
	Name  string `yaml:"name" json:"name"`
	Title string `yaml:"title" json:"title"`
	Repo  string `yaml:"repo" json:"repo"`
	// Quant is a GGUF repository's quantization to take.
	Quant string `yaml:"quant" json:"quant,omitempty"`
	// Quantization is what the checkpoint is (for the rules, before
	// anything is downloaded): method and scheme as inspect names them.
	Quantization struct {
		Method string `yaml:"method" json:"method,omitempty"`
		Algo   string `yaml:"algo" json:"algo,omitempty"`
	} `yaml:"quantization" json:"quantization"`
	// Kind is generation (default) or embedding.
	Kind string `yaml:"kind" json:"kind,omitempty"`
	// Model is the config entry get --recipe writes (models.<name>).
	Model struct {
		Engine  string            `yaml:"engine" json:"engine"`
		Runtime string            `yaml:"runtime" json:"runtime,omitempty"`
		Image   string            `yaml:"image" json:"image,omitempty"`
		Context int64             `yaml:"context" json:"context,omitempty"`
		Memory  string            `yaml:"memory" json:"memory,omitempty"`
		Args    []string          `yaml:"args" json:"args,omitempty"`
		Env     map[string]string `yaml:"env" json:"env,omitempty"`
	} `yaml:"model" json:"model"`
	Sources []Source `yaml:"sources" json:"sources"`
	// File is the recipe's file in the catalogue.
	File string `yaml:"-" json:"file"`
}

// Source is where a recipe's settings come from.
type Source struct {
	What string `yaml:"what" json:"what"`
	URL  string `yaml:"url" json:"url"`
}

// All reads the catalogue, sorted by name.
func All() ([]Recipe, error) {
	ents, err := catalog.ReadDir("catalog")
	if err != nil {
		return nil, err
	}
	var out []Recipe
	for _, e := range ents {
		b, err := catalog.ReadFile(path.Join("catalog", e.Name()))
		if err != nil {
			return nil, err
		}
		var r Recipe
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("recipe %s: %w", e.Name(), err)
		}
		r.File = e.Name()
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Find is the recipe called name.
func Find(name string) (*Recipe, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	var names []string
	for i := range all {
		if all[i].Name == name {
			return &all[i], nil
		}
		names = append(names, all[i].Name)
	}
	return nil, fmt.Errorf("no recipe %q (gantry recipes lists them: %v)", name, names)
}

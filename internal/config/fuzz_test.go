package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds the config loader arbitrary YAML: it must never panic,
// and what it accepts must validate.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../cli/testdata/config/*.yaml")
	files = append(files, "../../examples/gantry.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(demoYAML))
	f.Add([]byte("models: {a: {engine: sim, memory: 1GiB, port: \"${env.X}\"}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.yaml", b)
		if err != nil {
			return
		}
		if probs := c.Validate(); probs.Errors() > 0 {
			t.Fatalf("accepted a config with errors: %v", probs)
		}
		for _, m := range c.Models {
			if m.Port <= 0 && m.Slot == "" {
				t.Fatalf("model %s has no port", m.Name)
			}
		}
	})
}

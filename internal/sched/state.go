package sched

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gantryhq/gantry/internal/config"
)

// persisted is what gantry remembers across restarts.
type persisted struct {
	Profile string `json:"profile"`
}

// engineRecord is one engine gantry started, kept so that the next gantry
// can adopt it (same argv, still alive and healthy) or clean it up.
type engineRecord struct {
	PID     int       `json:"pid"`
	Argv    []string  `json:"argv"`
	Port    int       `json:"port"`
	Started time.Time `json:"started"`
}

// enginesFile is <root>/state/engines.json.
func enginesFile(c *config.Config) string {
	return filepath.Join(c.Root, "state", "engines.json")
}

func loadEngines(path string) map[string]engineRecord {
	out := map[string]engineRecord{}
	b, err := os.ReadFile(path)
	if err == nil {
		json.Unmarshal(b, &out) //nolint:errcheck // a damaged file adopts nothing
	}
	return out
}

// StatePath is where gantry keeps its state: <root>/state/gantry.json.
func StatePath(c *config.Config) string {
	return filepath.Join(c.Root, "state", "gantry.json")
}

func loadState(path string) (persisted, error) {
	var p persisted
	b, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// saveState writes the state atomically: a crash leaves the old file or
// the new one, never half of one.
func saveState(path string, p persisted) error {
	return writeJSONAtomic(path, p)
}

func writeJSONAtomic(path string, p any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gantry-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package sched

import (
	"fmt"
	"path/filepath"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/statefile"
)

// persisted is what gantry remembers across restarts.
type persisted struct {
	Profile string `json:"profile"`
}

// enginesFile is <root>/state/engines.json, the registry of the engine
// processes (supervise.Registry).
func enginesFile(c *config.Config) string {
	return filepath.Join(c.Root, "state", "engines.json")
}

// StatePath is where gantry keeps its state: <root>/state/gantry.json.
func StatePath(c *config.Config) string {
	return filepath.Join(c.Root, "state", "gantry.json")
}

func loadState(path string) (persisted, error) {
	var p persisted
	if err := statefile.ReadJSON(path, &p); err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// saveState writes the state atomically: a crash leaves the old file or
// the new one, never half of one.
func saveState(path string, p persisted) error {
	return statefile.WriteJSON(path, p)
}

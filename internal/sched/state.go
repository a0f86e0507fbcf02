package sched

import (
	"fmt"
	"maps"
	"path/filepath"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/statefile"
)

// persisted is what gantry remembers across restarts.
type persisted struct {
	Profile string `json:"profile"`
	// LoadSeconds is how long each model's last load took here, for the
	// next load's progress estimate.
	LoadSeconds map[string]float64 `json:"load_seconds,omitempty"`
}

// persistedLocked is what to save now.
func (s *Scheduler) persistedLocked() persisted {
	return persisted{Profile: s.profile, LoadSeconds: maps.Clone(s.loads)}
}

// save writes the state; a failure is logged (it costs only a restart's
// memory of the profile and load times).
func (s *Scheduler) save(p persisted) {
	if err := saveState(s.stateFile, p); err != nil {
		s.logger.Warn("could not save gantry's state", "path", s.stateFile, "err", err)
	}
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

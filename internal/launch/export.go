package launch

import (
	"errors"
	"fmt"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
)

// ReadyPath is the path of the model's engine that answers 200 when the
// model is ready — the rule gantry's own probe follows (Health) —, ""
// when the engine (a headless rank) serves no HTTP.
func ReadyPath(m *config.Model) (string, error) {
	h, err := Health(m)
	return h.Path, err
}

// UsesGPU reports whether the model's engine computes on a GPU (all but
// the simulated one).
func UsesGPU(m *config.Model) bool {
	d, err := engine.Lookup(m.Engine)
	return err != nil || !d.NoGPU
}

// ErrNoImage is returned (wrapped) by InContainer for a native engine
// that names no image: its binary exists only on the box.
var ErrNoImage = errors.New("no container image")

// InContainer is the container a model's engine runs as, whatever its
// runtime: for runtime docker the one gantry creates; for a native engine
// the same engine in image (the model's image:, else engines.<e>.image),
// launched as a docker-runtime engine is — listening on 0.0.0.0, the model
// folder at /model, the planner's flags and environment. The spec's Argv
// is the engine's own command, program first where the engine names one.
func InContainer(m *config.Model, h Host, r engine.Resources) (*engine.ContainerSpec, error) {
	c := *m
	if c.Runtime != config.RuntimeDocker {
		if c.Image == "" {
			if es := h.Config.Engines[c.Engine]; es != nil {
				c.Image = es.Image
			}
		}
		if c.Image == "" {
			return nil, fmt.Errorf("%s: runtime native, engine %s: %w (set models.%s.image or engines.%s.image to an image that holds the engine)",
				m.Name, m.Engine, ErrNoImage, m.Name, m.Engine)
		}
		c.Runtime = config.RuntimeDocker
		if c.GPUs == "" {
			c.GPUs = "all"
			if !UsesGPU(m) {
				c.GPUs = "none"
			}
		}
	}
	l, err := Build(&c, h, r)
	if err != nil {
		return nil, err
	}
	if l.Container == nil {
		return nil, fmt.Errorf("%s: engine %s has no container form", m.Name, m.Engine)
	}
	return l.Container, nil
}

package engine

import (
	"errors"
	"fmt"

	"github.com/gantryhq/gantry/internal/config"
)

// readyPather is the HTTP side of an engine's readiness rule: the path
// that answers 200 once the model is served ("" when this rank serves no
// HTTP at all: running is all it says).
type readyPather interface {
	ReadyPath(m *config.Model) string
}

var (
	_ readyPather = sglang{}
	_ readyPather = vllm{}
	_ readyPather = trtllm{}
	_ readyPather = llamacpp{}
	_ readyPather = ollama{}
	_ readyPather = command{}
	_ readyPather = sim{}
)

// ReadyPath is the path of the model's engine that answers 200 when the
// model is ready — the rule gantry's own probe follows —, "" when the
// engine (a headless rank) serves no HTTP.
func ReadyPath(m *config.Model) (string, error) {
	a, err := For(m.Engine)
	if err != nil {
		return "", err
	}
	return a.(readyPather).ReadyPath(m), nil
}

// UsesGPU reports whether the model's engine computes on a GPU (all but
// the simulated one).
func UsesGPU(m *config.Model) bool {
	a, err := For(m.Engine)
	if err != nil {
		return false
	}
	g, ok := a.(interface{ UsesGPU() bool })
	return !ok || g.UsesGPU()
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
func InContainer(m *config.Model, h Host, r Resources) (*ContainerSpec, error) {
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

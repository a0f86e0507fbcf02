// Package launch turns a configured model into the launch of its engine:
// it resolves the config's values into the engine's Model (paths, port,
// program, the planner's resources), asks the engine's descriptor for its
// command, and wraps it for the runtime — a process's argv and
// environment, or a container as gantry creates it through the Docker
// Engine API (with the equivalent `docker run` for units and people). It
// knows no engine: everything engine-specific comes from the descriptor.
package launch

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
)

// Host facts a launch needs beyond the model's own config.
type Host struct {
	// Config is the whole config (root, engine settings).
	Config *config.Config
	// Self is the gantry executable, used to run `gantry sim`.
	Self string
	// NodeRank, when set, is the rank a model across nodes is told
	// instead of this box's place in nodes: — a reference the runtime
	// fills in, such as LeaderWorkerSet's $(LWS_WORKER_INDEX).
	NodeRank string
}

// Build is the launch of m's engine: its descriptor's command, with the
// model's env, the planner's resources and, for runtime docker, the
// container.
func Build(m *config.Model, h Host, r engine.Resources) (engine.Launch, error) {
	d, err := engine.Lookup(m.Engine)
	if err != nil {
		return engine.Launch{}, err
	}
	var l engine.Launch
	if m.Runtime == config.RuntimeDocker { // a native-only engine only for export (InContainer)
		l, err = containerLaunch(d, m, h, r)
	} else {
		l, err = nativeLaunch(d, m, h, r)
	}
	if err != nil {
		return engine.Launch{}, fmt.Errorf("%s: %w", m.Name, err)
	}
	l.BaseURL = "http://127.0.0.1:" + strconv.Itoa(m.Port)
	for _, k := range sortedEnvKeys(m.Env) {
		l.Env = append(l.Env, k+"="+m.Env[k])
	}
	if m.Runtime != config.RuntimeDocker { // a container gets them as docker run -e
		l.Env = append(l.Env, plannedEnv(m, r)...)
	}
	if d.Metrics.Path != "" {
		l.MetricsURL = l.BaseURL + d.Metrics.Path
	}
	return l, nil
}

// Model is m as its engine's descriptor sees it, natively: the host's
// paths, bound to loopback.
func Model(m *config.Model, h Host, r engine.Resources) (engine.Model, error) {
	d, err := engine.Lookup(m.Engine)
	if err != nil {
		return engine.Model{}, err
	}
	em := model(m, h, r)
	em.Host, em.Path, em.Program = "127.0.0.1", h.Config.ModelPath(m), d.Program
	if es := h.Config.Engines[m.Engine]; es != nil && es.Binary != "" {
		em.Program = es.Binary
	}
	if d.Container.Store != "" {
		em.Store = StoreDir(h.Config, m.Engine)
	}
	return em, nil
}

// model is what every runtime's Model shares.
func model(m *config.Model, h Host, r engine.Resources) engine.Model {
	em := engine.Model{Name: m.Name, Port: m.Port, Self: h.Self, Args: m.Args, Command: m.Command,
		HealthPath: m.Health, Plan: r}
	if m.MultiNode() {
		em.Nodes, em.Rank, em.DistInitAddr, em.RankRef = len(m.Nodes), m.Rank(), m.DistInitAddr, h.NodeRank
	}
	return em
}

func nativeLaunch(d *engine.Descriptor, m *config.Model, h Host, r engine.Resources) (engine.Launch, error) {
	em, err := Model(m, h, r)
	if err != nil {
		return engine.Launch{}, err
	}
	cmd, err := d.Command(em)
	if err != nil {
		return engine.Launch{}, err
	}
	return engine.Launch{Argv: cmd.Argv, Env: cmd.Env}, nil
}

// StoreDir is where an engine that keeps its own model store (Ollama)
// keeps it for gantry: <root>/models/<engine>.
func StoreDir(c *config.Config, eng string) string { return filepath.Join(c.Root, "models", eng) }

// Health is the readiness rule of m's engine (engine.Probe takes it).
func Health(m *config.Model) (engine.Health, error) {
	d, err := engine.Lookup(m.Engine)
	if err != nil {
		return engine.Health{}, err
	}
	return d.Health(model(m, Host{}, engine.Resources{})), nil
}

func sortedEnvKeys(env map[string]string) []string {
	ks := make([]string, 0, len(env))
	for k := range env {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// plannedEnv is the planner's environment less what the model sets.
func plannedEnv(m *config.Model, r engine.Resources) []string {
	var out []string
	for _, kv := range r.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := m.Env[k]; !ok {
			out = append(out, kv)
		}
	}
	return out
}

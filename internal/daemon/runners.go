package daemon

import (
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/group"
	"github.com/gantryhq/gantry/internal/ollama"
	"github.com/gantryhq/gantry/internal/peers"
	"github.com/gantryhq/gantry/internal/sched"
)

// The scheduler's optional interfaces an Ollama model has (it lives in
// package ollama, which does not import sched).
var (
	_ sched.Runner         = (*ollama.Model)(nil)
	_ sched.Adopter        = (*ollama.Model)(nil)
	_ sched.MemoryMeasurer = (*ollama.Model)(nil)
)

// runners chooses each model's runner: engine ollama's models share one
// `ollama serve` (built with the first of them, kept across reloads), a
// model across nodes that this box leads is its rank 0 with the other
// ranks started and watched through the peers, every other model is a
// supervised process of its own.
func runners(peerSet *peers.Set, lg *slog.Logger, docker *container.Client) sched.NewRunner {
	var mu sync.Mutex
	var srv *ollama.Server
	return func(sp sched.RunnerSpec) (sched.Runner, error) {
		if sp.Model.MultiNode() && sp.Model.Leads() {
			return group.Wrap(sp, peerSet, lg, sched.NewProcess, docker)
		}
		if d, _ := engine.Lookup(sp.Model.Engine); d == nil || d.Shared == "" {
			return sched.NewProcess(sp)
		}
		mu.Lock()
		defer mu.Unlock()
		if srv == nil {
			s, err := ollama.NewServer(sp.Model, sp.Launch, filepath.Join(sp.Config.Root, "logs", "ollama", "serve.log"), sp.Options)
			if err != nil {
				return nil, err
			}
			srv = s
		}
		return ollama.NewModel(sp.Model, srv, sp.Config.ModelPath(sp.Model), sp.Plan.Context, sp.Options), nil
	}
}

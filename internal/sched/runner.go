package sched

import (
	"context"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// Runner is what the scheduler needs of a model's engine;
// *supervise.Process is the real one, ollama.Model another.
type Runner interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Close(ctx context.Context) error
	Status() supervise.Status
	State() status.State
	SetRestart(on bool)
	Model() *config.Model
	Launch() engine.Launch
	Log() *supervise.Log
}

// Adopter is a runner that can take over the engine a previous gantry
// started for it (found in the registry of running engines): Adopt returns
// nil when it now supervises that engine, ready, and an error saying why
// not otherwise (then the scheduler's sweep stops what is left).
type Adopter interface {
	Adopt(ctx context.Context) error
}

// The other optional interfaces a runner may have; the scheduler finds
// them by type assertion, so each implementation states it with a
// compile-time guard (var _ sched.Detacher = (*T)(nil)): a runner that
// loses a method then fails to build instead of silently losing the
// feature.
type (
	// ContainerHolder is a runner whose engine may run in a container:
	// ContainerID is its ID ("" when none runs), kept by the sweep of
	// leftover containers.
	ContainerHolder interface{ ContainerID() string }
	// Detacher forgets its engine without stopping it (gantry is being
	// replaced; the next one adopts the engine).
	Detacher interface{ Detach() }
	// MemoryMeasurer knows what its loaded model really takes (0:
	// unknown), which replaces the estimate when the config sets none.
	MemoryMeasurer interface{ MeasuredMemory() int64 }
	// RankReporter is a model across nodes: every rank's state.
	RankReporter interface{ Ranks() []status.RankStatus }
)

// The real engine process has every optional interface but Ranks and
// MeasuredMemory.
var (
	_ Runner          = (*supervise.Process)(nil)
	_ Adopter         = (*supervise.Process)(nil)
	_ ContainerHolder = (*supervise.Process)(nil)
	_ Detacher        = (*supervise.Process)(nil)
)

// RunnerSpec is what one model's runner is built from.
type RunnerSpec struct {
	Config  *config.Config
	Model   *config.Model
	Launch  engine.Launch
	Plan    *plan.Model
	Options supervise.Options
}

// NewRunner builds the runner of one model.
type NewRunner func(RunnerSpec) (Runner, error)

// NewProcess is the default NewRunner: a supervised process with its log
// at the config's log path for the model.
func NewProcess(sp RunnerSpec) (Runner, error) {
	return supervise.New(sp.Model, sp.Launch, sp.Config.LogPath(sp.Model), sp.Options)
}

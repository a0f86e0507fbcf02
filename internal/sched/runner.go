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

package engine

import (
	"errors"
	"slices"
)

// Command is the name of the engine that runs any OpenAI-compatible
// server the model's command: names.
const Command = "command"

func init() {
	register(&Descriptor{
		Name: Command, Title: "command", Order: 60,
		Runtime:      RuntimeNative,
		NativeOnly:   true,
		TakesCommand: true,
		// For export: an image whose own server the command: runs.
		Container: Container{PlanEnv: true},
		Command: func(m Model) (Cmd, error) {
			if len(m.Command) == 0 {
				return Cmd{}, errors.New("engine command needs command: (the argv of the server to run)")
			}
			return Cmd{Argv: append(slices.Clone(m.Command), m.Args...)}, nil
		},
		Health: func(m Model) Health { return healthAt(m.HealthPath) },
	})
}

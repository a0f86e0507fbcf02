package engine

import "strconv"

// Sim is the name of gantry's simulated engine, `gantry sim`.
const Sim = "sim"

func init() {
	register(&Descriptor{
		Name: Sim, Title: "gantry sim", Order: 70,
		Runtime:    RuntimeNative,
		NativeOnly: true,
		SpansNodes: true,
		NoGPU:      true,
		// For export: an image with gantry on its PATH.
		Container:     Container{Program: "gantry", PlanEnv: true},
		EmbeddingFlag: "--embedding",
		Command: func(m Model) (Cmd, error) {
			prog := m.Program // engines.sim.binary, or the image's gantry
			if prog == "" {
				prog = m.Self
			}
			if prog == "" {
				prog = "gantry"
			}
			argv := []string{prog, "sim"}
			if m.Host != "" && m.Host != "127.0.0.1" {
				argv = append(argv, "--host", m.Host) // it binds loopback unless told
			}
			argv = append(argv, "--port", strconv.Itoa(m.Port), "--model", m.Name)
			argv = append(argv, sglangNodeFlags(m)...) // sim takes SGLang's flags
			return Cmd{Argv: append(argv, m.Args...)}, nil
		},
		Health: func(m Model) Health {
			if FlagValue(m.Args, "--flavor") == Ollama {
				return healthAt("/api/version")
			}
			return healthAt("/health")
		},
		Metrics: Metrics{Path: "/metrics"},
	})
}

package engine

import "strconv"

// LlamaCpp is the name of llama.cpp's engine: llama-server, serving one
// GGUF file.
const LlamaCpp = "llamacpp"

func init() {
	register(&Descriptor{
		Name: LlamaCpp, Title: "llama.cpp", Order: 50,
		Runtime: RuntimeNative,
		Program: "llama-server",
		// The server image's entrypoint is /app/llama-server: the command is
		// its arguments; the file's folder is mounted.
		Container: Container{Image: "ghcr.io/ggml-org/llama.cpp:server-cuda-b6500", Mount: MountFileFolder},
		Files:     Files{Formats: []string{FormatGGUF}, DefaultFor: []string{FormatGGUF}, NeedsPath: true, DefaultContext: true},
		Command:   llamacppCommand,
		Health:    func(Model) Health { return healthAt("/health") },
		// tools/server/server.cpp (--metrics).
		Metrics: Metrics{Path: "/metrics", Running: []string{"llamacpp:requests_processing"},
			Waiting: []string{"llamacpp:requests_deferred"}, KVUsage: []string{"llamacpp:kv_cache_usage_ratio"}},
		Memory: Memory{Overhead: 512 << 20},
	})
}

func llamacppCommand(m Model) (Cmd, error) {
	a := program(m, "-m", m.Path, "--host", m.Host, "--port", strconv.Itoa(m.Port), "--alias", m.Name, "--metrics")
	if !HasFlag(m.Args, "-ngl", "--n-gpu-layers", "--gpu-layers") {
		a = append(a, "--n-gpu-layers", "999")
	}
	a = ctxFlag(a, m, "--ctx-size", "-c")
	return Cmd{Argv: userArgs(a, m)}, nil
}

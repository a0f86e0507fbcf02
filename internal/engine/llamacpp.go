package engine

import (
	"strconv"

	"github.com/gantryhq/gantry/internal/progress"
)

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
		Sim: Imitation{Listen: ListenAtOnce, Loading: "Loading model", ReadyBody: `{"status":"ok"}`,
			Tokens: "llamacpp:tokens_predicted_total",
			// ggml-org/llama.cpp#18546, #11699
			LoadLines: []string{
				"llama_model_loader: loaded meta data with 36 key-value pairs and 197 tensors from model.gguf (version GGUF V3 (latest))",
				"load_tensors: loading model tensors, this can take a while... (mmap = true)",
				"llama_context: constructing llama_context",
				"common_init_from_params: warming up the model with an empty run - please wait ... (--no-warmup to disable)",
			}},
		// llama-server's, and the runner's inside Ollama; real lines in
		// progress_test.go (ggml-org/llama.cpp#11699, #18546).
		LoadLines: []progress.Milestone{
			milestone(`llama_model_loader: loaded meta data`, progress.Weights, 0),
			milestone(`load_tensors: loading model tensors`, progress.Weights, -1),
			milestone(`llama_context: constructing|llama_init_from_model|llama_new_context_with_model`, progress.Context, -1),
			milestone(`warming up the model`, progress.WarmingUp, -1),
		},
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

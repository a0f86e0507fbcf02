package engine

import "strconv"

// TRTLLM is the name of TensorRT-LLM's engine: trtllm-serve (PyTorch
// backend).
const TRTLLM = "trtllm"

func init() {
	register(&Descriptor{
		Name: TRTLLM, Title: "TensorRT-LLM", Order: 30,
		Runtime: RuntimeDocker,
		Program: "trtllm-serve",
		// NGC's release image: a wrapper entrypoint that runs the command.
		Container: Container{Image: "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc5", Program: "trtllm-serve",
			Mount: MountFolder, Cache: "/root/.cache", PlanEnv: true},
		Files:   Files{Formats: []string{FormatSafetensors}, NeedsPath: true, DefaultContext: true},
		Command: trtllmCommand,
		Health:  func(Model) Health { return healthAt("/health") },
		Metrics: Metrics{Path: "/metrics"},
		Sim: Imitation{Listen: ListenWhenLoaded,
			Gauges: map[string]string{"trtllm_num_requests_running": "Number of running requests."}},
		Memory: Memory{
			Overhead: 4 << 30,
			// --kv_cache_free_gpu_memory_fraction: of the memory left after
			// the weights.
			Fraction:       "--kv_cache_free_gpu_memory_fraction",
			FractionOfFree: true,
			UnifiedEnv:     pytorchUnifiedEnv,
		},
	})
}

func trtllmCommand(m Model) (Cmd, error) {
	a := program(m, m.Path, "--host", m.Host, "--port", strconv.Itoa(m.Port), "--backend", "pytorch", "--served_model_name", m.Name)
	a = ctxFlag(a, m, "--max_seq_len")
	a = memFlag(a, m, "--kv_cache_free_gpu_memory_fraction")
	return Cmd{Argv: userArgs(a, m)}, nil
}

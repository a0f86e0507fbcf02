package engine_test

import (
	"testing"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/progress"
)

// Real lines of the engines, from their trackers: each is cited.
func TestRealLines(t *testing.T) {
	cases := []struct {
		source, line string
		want         progress.Step
	}{
		// vLLM's shard loader (vllm-project/vllm#38820).
		{"vllm#38820", "Loading safetensors checkpoint shards:  56% Completed | 5/9 [00:13<00:11,  2.87s/it]", step(progress.Weights, 5, 9, 0.56)},
		{"vllm#38820", "(Worker_TP0 pid=34322) INFO 05-06 20:59:57 [default_loader.py:384] Loading weights took 24.84 seconds", step(progress.LoadedWhen, 0, 0, 1)},
		{"vllm#38820", "(Worker_TP0 pid=34322) INFO 05-06 20:59:59 [gpu_model_runner.py:4879] Model loading took 12.66 GiB memory and 31.657031 seconds", step(progress.LoadedWhen, 0, 0, 1)},
		{"vllm#38820", "(Worker_TP0 pid=34322) INFO 05-06 21:00:16 [backends.py:1128] Dynamo bytecode transform time: 3.54 s", step(progress.Compiling, 0, 0, -1)},
		// vLLM V1's CUDA graph capture (vllm-project/vllm#27521, #46389).
		{"vllm#27521", "Capturing CUDA graphs (mixed prefill-decode, PIECEWISE):   7%|▋         | 5/67 [00:06<01:12,  1.17s/it]", step(progress.Graphs, 5, 67, 0.07)},
		{"vllm#46389", "Capturing CUDA graphs (decode, FULL):  46%|████▌     | 16/35 [00:01<00:01, 15.12it/s]", step(progress.Graphs, 16, 35, 0.46)},
		// vLLM 0.6 (vllm-project/vllm#11349).
		{"vllm#11349", "Capturing CUDA graph shapes: 100%|██████████| 35/35 [00:13<00:00,  2.51it/s]", step(progress.Graphs, 35, 35, 1)},
		{"vllm#11349", "INFO 12-19 22:58:41 model_runner.py:1535] Graph capturing finished in 14 secs, took 0.21 GiB", step(progress.Graphs, 0, 0, 1)},
		// SGLang (sgl-project/sglang#8081, #7547, #10747).
		{"sglang#8081", "[2025-07-16 05:13:21] Load weight begin. avail mem=78.50 GB", step(progress.Weights, 0, 0, -1)},
		{"sglang#8081", "Loading safetensors checkpoint shards:   0% Completed | 0/3 [00:00<?, ?it/s]", step(progress.Weights, 0, 3, 0)},
		{"sglang#7547", "[2025-06-27 19:02:04] Load weight end. type=GPT2LMHeadModel, dtype=torch.float16, avail mem=43.24 GB, mem usage=0.22 GB.", step(progress.LoadedWhen, 0, 0, 1)},
		{"sglang#7547", "[2025-06-27 19:02:09] KV Cache is allocated. #tokens: 1107402, K size: 19.01 GB, V size: 19.01 GB", step(progress.KVCache, 0, 0, 1)},
		{"sglang#10747", "Capturing batches (bs=8 avail_mem=1.71 GB):   0%|         | 0/4 [00:09<?, ?it/s]", step(progress.Graphs, 0, 4, 0)},
		// llama.cpp (ggml-org/llama.cpp#11699, #18546).
		{"llama.cpp#11699", "0.00.189.952 I load_tensors: loading model tensors, this can take a while... (mmap = true)", step(progress.Weights, 0, 0, -1)},
		{"llama.cpp#18546", "llama_model_loader: loaded meta data with 36 key-value pairs and 197 tensors from C:\\Users\\lavan\\win-x64\\External\\Models\\phi-3.5-mini-instruct.gguf (version GGUF V3 (latest))", step(progress.Weights, 0, 0, 0)},
		// Ollama's server, with OLLAMA_DEBUG (ollama/ollama#10517, #5123).
		{"ollama#10517", `time=2025-05-01T14:09:37.086+02:00 level=DEBUG source=server.go:625 msg="model load progress 0.45"`, step(progress.Weights, 0, 0, 0.45)},
		{"ollama#5123", `time=2024-06-18T16:25:20.030-06:00 level=INFO source=server.go:567 msg="waiting for server to become available" status="llm server loading model"`, step(progress.Weights, 0, 0, -1)},
	}
	for _, c := range cases {
		got, ok := engine.LoadProgress().Parse(c.line)
		if !ok || got != c.want {
			t.Errorf("%s: %q\n got %+v %v, want %+v", c.source, c.line, got, ok, c.want)
		}
	}
	for _, quiet := range []string{"INFO:     Uvicorn running on http://0.0.0.0:8000", "sim: ready at 2026", "print_info: n_vocab = 32000"} {
		if s, ok := engine.LoadProgress().Parse(quiet); ok {
			t.Errorf("%q read as %+v", quiet, s)
		}
	}
}

// step is a Step in the order its fields are declared.
func step(phase string, done, total int, fraction float64) progress.Step {
	return progress.Step{Phase: phase, Done: done, Total: total, Fraction: fraction}
}

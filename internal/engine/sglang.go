package engine

import (
	"fmt"
	"strconv"

	"github.com/gantryhq/gantry/internal/diagnose"
	"github.com/gantryhq/gantry/internal/lazyre"
	"github.com/gantryhq/gantry/internal/progress"
)

// SGLang is the name of SGLang's engine: python -m sglang.launch_server.
const SGLang = "sglang"

func init() {
	register(&Descriptor{
		Name: SGLang, Title: "SGLang", Order: 10,
		Port:    30000,
		Runtime: RuntimeDocker,
		Program: "python3",
		// lmsysorg/sglang has no entrypoint: the whole command runs.
		Container: Container{Image: "lmsysorg/sglang:spark", Program: "python3",
			Mount: MountFolder, Cache: "/root/.cache", PlanEnv: true},
		Files:      Files{Formats: []string{FormatSafetensors, FormatPyTorch}, DefaultFor: []string{FormatSafetensors}, NeedsPath: true, DefaultContext: true},
		SpansNodes: true,
		Command:    sglangCommand,
		// SGLang answers 503 while it warms up after the load.
		Health: func(Model) Health { return Health{Path: "/health", NotReady: "warming up"} },
		// python/sglang/srt/metrics/collector.py.
		Metrics: Metrics{Path: "/metrics", Running: []string{"sglang:num_running_reqs"},
			Waiting: []string{"sglang:num_queue_reqs"}, KVUsage: []string{"sglang:token_usage"}},
		Memory: Memory{
			Overhead: 3 << 30,
			Fraction: "--mem-fraction-static",
			// The token pool's size (server_args.py: "The maximum number of
			// tokens in the memory pool"), a cap on what the fraction
			// profiles.
			TokenPool:  "--max-total-tokens",
			UnifiedEnv: pytorchUnifiedEnv,
		},
		// Real lines in progress_test.go (sgl-project/sglang#8081, #7547).
		// The KV cache SGLang could allocate cannot hold one sequence of
		// the context it was told.
		Signatures: []diagnose.Signature{{Name: "kv-cache-too-small", Level: diagnose.Error,
			Line: lazyre.New(`Not enough memory\. Please try to increase --mem-fraction-static|max_total_tokens=\d+ is larger than the profiled value -\d+`),
			Say: func(diagnose.Match, diagnose.Context) (string, string) {
				return "the engine had no memory left for its KV cache after loading the weights",
					"raise memory: (gantry turns it into the engine's memory fraction), or lower context: / concurrency:"
			}}},
		Sim: Imitation{Listen: ListenHalfway,
			Tokens: "sglang:generation_tokens_total",
			// sgl-project/sglang#8081, #7547, #10747
			LoadLines: []string{
				"[%[3]s] Load weight begin. avail mem=78.50 GB",
				bar("Loading safetensors checkpoint shards", 3, " Completed |"),
				"[%[3]s] Load weight end. type=LlamaForCausalLM, dtype=torch.bfloat16, avail mem=70.10 GB, mem usage=8.40 GB.",
				"[%[3]s] KV Cache is allocated. #tokens: 100000, K size: 1.00 GB, V size: 1.00 GB",
				"[%[3]s] Capture cuda graph begin. This can take up to several minutes. avail mem=60.00 GB",
				bar("Capturing batches (bs=8 avail_mem=1.71 GB)", 4, "|████      |"),
				"[%[3]s] Capture cuda graph end. Time elapsed: 1.00 s. mem usage=0.50 GB. avail mem=59.50 GB.",
			}},
		LoadLines: []progress.Milestone{
			milestone(`Load weight begin`, progress.Weights, -1),
			milestone(`Load weight end`, progress.LoadedWhen, 1),
			milestone(`KV Cache is allocated|Memory pool end`, progress.KVCache, 1),
			milestone(`Capture cuda graph begin`, progress.Graphs, -1),
			milestone(`Capture cuda graph end`, progress.Graphs, 1),
		},
		Rules: []CheckpointRule{
			{"compressed-tensors-on-sglang", func(name string, args []string, c Checkpoint, gpus []GPU) *Finding {
				if c.QuantMethod != "compressed-tensors" {
					return nil
				}
				return &Finding{Level: "warning", Reason: fmt.Sprintf("%s is a compressed-tensors checkpoint (%s); SGLang has known scheme/loader problems with these", name, c.Quant),
					Fix: "if it fails to start: use a ModelOpt or fp8 checkpoint of the model, or a newer SGLang image"}
			}},
			{"modelopt-fp4-on-sglang-needs-flag", func(name string, args []string, c Checkpoint, gpus []GPU) *Finding {
				if c.QuantMethod != "modelopt" || !isFP4(c.QuantAlgo) || HasFlag(args, "--quantization") {
					return nil
				}
				return &Finding{Level: "fixed", Reason: "SGLang needs --quantization modelopt_fp4 for a ModelOpt NVFP4 checkpoint",
					Fix: "gantry adds --quantization modelopt_fp4", AddArgs: []string{"--quantization", "modelopt_fp4"}}
			}},
			{"embedding-on-sglang-needs-flag", func(name string, args []string, c Checkpoint, gpus []GPU) *Finding {
				if c.Kind != "embedding" || HasFlag(args, "--is-embedding") {
					return nil
				}
				return &Finding{Level: "fixed", Reason: "SGLang serves an embedding model only with --is-embedding",
					Fix: "gantry adds --is-embedding", AddArgs: []string{"--is-embedding"}}
			}},
		},
	})
}

func sglangCommand(m Model) (Cmd, error) {
	a := program(m, "-m", "sglang.launch_server", "--model-path", m.Path,
		"--host", m.Host, "--port", strconv.Itoa(m.Port), "--served-model-name", m.Name, "--enable-metrics")
	a = ctxFlag(a, m, "--context-length")
	a = memFlag(a, m, "--mem-fraction-static")
	a = intFlag(a, m, "--max-total-tokens", m.Plan.MaxTotalTokens)
	a = append(a, sglangNodeFlags(m)...)
	return Cmd{Argv: userArgs(a, m)}, nil
}

// sglangNodeFlags are SGLang's multi-node flags for this box's rank:
// --nnodes N --node-rank R --dist-init-addr HOST:PORT. Ranks ≥ 1 serve no
// API; they answer /health from a stand-in server once loaded
// (launch_dummy_health_check_server in python/sglang/srt/entrypoints/engine.py).
func sglangNodeFlags(m Model) []string {
	if !m.MultiNode() {
		return nil
	}
	return []string{"--nnodes", strconv.Itoa(m.Nodes), "--node-rank", m.rank(), "--dist-init-addr", m.DistInitAddr}
}

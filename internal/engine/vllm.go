package engine

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/diagnose"
	"github.com/gantryhq/gantry/internal/lazyre"
	"github.com/gantryhq/gantry/internal/progress"
)

// VLLM is the name of vLLM's engine: vllm serve.
const VLLM = "vllm"

func init() {
	register(&Descriptor{
		Name: VLLM, Title: "vLLM", Order: 20,
		Port:    8000,
		Runtime: RuntimeDocker,
		Program: "vllm",
		// vllm/vllm-openai's entrypoint is ["vllm", "serve"]; NGC's images
		// a wrapper that runs the whole command (Fit decides).
		Container: Container{Image: "nvcr.io/nvidia/vllm:26.05.post1-py3", Program: "vllm",
			Mount: MountFolder, Cache: "/root/.cache", PlanEnv: true},
		Files:      Files{Formats: []string{FormatSafetensors, FormatPyTorch}, NeedsPath: true, DefaultContext: true},
		SpansNodes: true,
		Command:    vllmCommand,
		Health: func(m Model) Health {
			if m.Follower() {
				return Health{} // a headless rank serves no HTTP at all
			}
			return healthAt("/health")
		},
		// vllm/v1/metrics/loggers.py; vLLM renamed gpu_cache_usage_perc to
		// kv_cache_usage_perc and exported both for a while.
		Metrics: Metrics{Path: "/metrics", Running: []string{"vllm:num_requests_running"},
			Waiting: []string{"vllm:num_requests_waiting"},
			KVUsage: []string{"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}},
		Memory: Memory{
			Overhead: 3 << 30,
			Fraction: "--gpu-memory-utilization",
			// vLLM checks that its share of the total is free when it starts,
			// and CUDA's free memory on a GB10 tops out at 0.83–0.84 of it
			// (gpu.UnifiedCUDAShare); 0.82 leaves room for the variation
			// between boots.
			UnifiedCap: 0.82,
			// CacheConfig.kv_cache_memory_bytes (vllm/config/cache.py: "when
			// not-None ignores gpu_memory_utilization"; NVIDIA/xr-ai#462
			// uses it with vLLM 0.20): an explicit size bypasses the memory
			// profiling that, on unified memory, counts the page cache and
			// the compiler's heap as the model's (eugr/spark-vllm-docker#286).
			KVBytes:    "--kv-cache-memory-bytes",
			KVBytesIn:  vllmHasKVBytes,
			UnifiedEnv: pytorchUnifiedEnv,
		},
		Rules: []CheckpointRule{{"fp4-on-vllm-sm12x", vllmFP4OnSM12x}},
		// Real lines in progress_test.go (vllm-project/vllm#38820, #11349).
		Signatures: vllmSignatures,
		Sim: Imitation{Listen: ListenWhenLoaded, Tokenize: true,
			Tokens: "vllm:generation_tokens_total",
			// vllm-project/vllm#38820, #46389
			LoadLines: []string{
				bar("Loading safetensors checkpoint shards", 4, " Completed |"),
				"(Worker_TP0 pid=%[1]d) INFO [default_loader.py:384] Loading weights took %.2[2]f seconds",
				"(Worker_TP0 pid=%[1]d) INFO [backends.py:1128] Dynamo bytecode transform time: 0.10 s",
				"(EngineCore_DP0 pid=%[1]d) INFO [gpu_worker.py:436] Available KV cache memory: 1.00 GiB",
				bar("Capturing CUDA graphs (decode, FULL)", 4, "|████      |"),
				"(EngineCore_DP0 pid=%[1]d) INFO [gpu_model_runner.py:4999] Graph capturing finished in 1 secs, took 0.01 GiB",
			}},
		LoadLines: []progress.Milestone{
			milestone(`Loading weights took [\d.]+ seconds|Model loading took [\d.]+ GiB`, progress.LoadedWhen, 1),
			milestone(`Dynamo bytecode transform time|Compiling a graph for dynamic shape|torch\.compile takes|Using cache directory: .* for vLLM's torch\.compile`, progress.Compiling, -1),
			milestone(`Available KV cache memory|GPU KV cache size|# GPU blocks`, progress.KVCache, 1),
			milestone(`Graph capturing finished in`, progress.Graphs, 1),
			milestone(`Starting vLLM API server|Waiting for application startup`, progress.ServerUp, -1),
		},
	})
}

var (
	upstreamTag = lazyre.New(`:v?(\d+)\.(\d+)(?:\.\d+)?`)
	ngcTag      = lazyre.New(`^nvcr\.io/nvidia/vllm:(\d{2})\.(\d{2})`)
)

// vllmHasKVBytes tells from an image tag whether its vLLM takes
// --kv-cache-memory-bytes: upstream from 0.11 (v0.10.2's CacheConfig has
// no kv_cache_memory_bytes), NGC containers from 26.01. A native vLLM or
// an untagged image is taken to be current.
func vllmHasKVBytes(image string) (bool, string) {
	if m := ngcTag.FindStringSubmatch(image); m != nil {
		yy, _ := strconv.Atoi(m[1])
		mm, _ := strconv.Atoi(m[2])
		if yy*100+mm < 2601 {
			return false, fmt.Sprintf("the NGC vLLM container %s predates --kv-cache-memory-bytes", image)
		}
		return true, ""
	}
	if m := upstreamTag.FindStringSubmatch(image); m != nil {
		maj, _ := strconv.Atoi(m[1])
		mn, _ := strconv.Atoi(m[2])
		if maj == 0 && mn < 11 {
			return false, fmt.Sprintf("vLLM %s.%s (%s) predates --kv-cache-memory-bytes (0.11)", m[1], m[2], image)
		}
	}
	return true, ""
}

// vllmFP4OnSM12x: on SM12x (GB10 is sm_121) vLLM may run FP4 weights
// through the Marlin weight-only fallback.
func vllmFP4OnSM12x(name string, args []string, c Checkpoint, gpus []GPU) *Finding {
	if c.QuantBits != 4 || !isFP4(c.QuantAlgo) {
		return nil
	}
	for _, g := range gpus {
		if g.SM >= 120 && g.SM < 130 {
			return &Finding{Level: "warning", Reason: fmt.Sprintf("vLLM may run %s weights through the Marlin weight-only FP4 fallback on SM%d (%s): little or no gain over FP8", c.QuantAlgo, g.SM, g.Name),
				Fix: "prefer an FP8 checkpoint with vLLM here, or serve the FP4 checkpoint with SGLang or TensorRT-LLM"}
		}
	}
	return nil
}

func vllmCommand(m Model) (Cmd, error) {
	a := program(m, "serve", m.Path, "--host", m.Host, "--port", strconv.Itoa(m.Port), "--served-model-name", m.Name)
	a = ctxFlag(a, m, "--max-model-len")
	a = memFlag(a, m, "--gpu-memory-utilization")
	a = intFlag(a, m, "--kv-cache-memory-bytes", m.Plan.KVCacheBytes)
	a = append(a, vllmNodeFlags(m)...)
	return Cmd{Argv: userArgs(a, m)}, nil
}

// vllmNodeFlags are vLLM's own multi-node flags without Ray
// (docs/serving/parallelism_scaling.md, "Running vLLM with
// MultiProcessing"): --nnodes N --node-rank R --master-addr HOST
// --master-port PORT, and --headless on ranks ≥ 1.
func vllmNodeFlags(m Model) []string {
	if !m.MultiNode() {
		return nil
	}
	host, port, _ := strings.Cut(m.DistInitAddr, ":")
	if i := strings.LastIndex(m.DistInitAddr, ":"); i >= 0 {
		host, port = strings.Trim(m.DistInitAddr[:i], "[]"), m.DistInitAddr[i+1:]
	}
	f := []string{"--nnodes", strconv.Itoa(m.Nodes), "--node-rank", m.rank(), "--master-addr", host, "--master-port", port}
	if m.Follower() {
		f = append(f, "--headless")
	}
	return f
}

// vllmSignatures are the failures only vLLM words so; real lines in
// internal/diagnose's tests and testdata/logs.
var vllmSignatures = []diagnose.Signature{
	{Name: "vllm-free-memory", Level: diagnose.Error, Line: lazyre.New(`Free memory on device(?: \S+)? \(([\d.]+)/([\d.]+) GiB\) on startup is less than desired GPU memory utilization \(([\d.]+), ([\d.]+) GiB\)`),
		Say: func(f diagnose.Match, c diagnose.Context) (string, string) {
			m := f.Groups
			cause := fmt.Sprintf("vLLM wanted %s GiB (utilization %s) but only %s of %s GiB were free when it started", m[4], m[3], m[1], m[2])
			if c.Unified {
				// vllm-project/vllm#48140: on unified memory CUDA's free is
				// MemFree, and the page cache counts as used.
				return cause + " — on unified memory CUDA counts the page cache as used",
					"gantry evicts the model's own checkpoint pages before each start; set memory.drop_caches: true (gantry as root) to drop the rest, or drop --gpu-memory-utilization from args so gantry passes its own share and the exact KV size"
			}
			fix := "memory is held by another process — often an orphaned vLLM EngineCore"
			if len(c.Procs) > 0 {
				var ps []string
				for _, p := range c.Procs {
					used := "?"
					if p.Used != nil {
						used = fmt.Sprintf("%.1f GiB", float64(*p.Used)/(1<<30))
					}
					ps = append(ps, fmt.Sprintf("pid %d %s (%s)", p.PID, p.Name, used))
				}
				fix += ": " + strings.Join(ps, ", ")
			}
			return cause, fix + "; stop it (kill the PID) or lower memory:"
		}},
	// The KV cache vLLM could allocate cannot hold one sequence of the
	// context it was told (the old and the V1 wording).
	{Name: "kv-cache-too-small", Level: diagnose.Error,
		Line: lazyre.New(`max seq len \(?(\d+)\)? is larger than the maximum number of tokens that can be stored in KV cache \((\d+)\)|max seq len \((\d+)\), \(([\d.]+ GiB) KV cache is needed, which is larger than the available KV cache memory \(([\d.]+ GiB)\)`),
		Say: func(f diagnose.Match, c diagnose.Context) (string, string) {
			m := f.Groups
			if m[1] != "" {
				return fmt.Sprintf("the KV cache holds %s tokens, fewer than one sequence of the context %s", m[2], m[1]),
					"lower context: (gantry passes it as the engine's context length) or raise memory:; gantry sizes the KV cache from memory: and concurrency:"
			}
			return fmt.Sprintf("one sequence of the context %s needs %s of KV cache, but the engine had %s for it", m[3], m[4], m[5]),
				"lower context: or raise memory:; on unified memory the page cache can eat the KV budget (see On a DGX Spark in the README)"
		}},
	// The KV cache came out at zero or below: vLLM's profiling left it
	// nothing — on unified memory because it counted the page cache or the
	// compiler's heap as the model's (eugr/spark-vllm-docker#286,
	// NVIDIA/xr-ai#462).
	{Name: "kv-cache-none", Level: diagnose.Error, Line: lazyre.New(`Available KV cache memory: (-[\d.]+ GiB)|No available memory for the cache blocks`),
		Say: func(f diagnose.Match, c diagnose.Context) (string, string) {
			what := "nothing"
			if f.Groups[1] != "" {
				what = f.Groups[1]
			}
			if c.Unified {
				return "vLLM's memory profiling left the KV cache " + what + ": on unified memory it counts the page cache and the compiler's heap as the model's",
					"gantry passes --kv-cache-memory-bytes (the exact size) unless args set --gpu-memory-utilization: drop that flag, or use a vLLM that takes the exact size (0.11 or newer)"
			}
			return "after the weights and activations vLLM had " + what + " left for the KV cache",
				"raise memory: (gantry turns it into the engine's share), or lower context: / concurrency:"
		}},
	// vLLM refuses a context longer than the model's own
	// (vllm/config/model.py, ModelConfig's max_model_len check).
	{Name: "context-too-long", Level: diagnose.Error, Line: lazyre.New(`User-specified max_model_len \((\d+)\) is greater than the derived max_model_len \((\w+)=(\d+)`),
		Say: func(f diagnose.Match, c diagnose.Context) (string, string) {
			return fmt.Sprintf("the context %s is longer than the model allows (%s %s)", f.Groups[1], f.Groups[2], f.Groups[3]),
				fmt.Sprintf("lower context: to %s or less (and drop --max-model-len from args if you set it)", f.Groups[3])
		}},
	{Name: "marlin-fp4-fallback", Level: diagnose.Warning, Line: lazyre.New(`Weight-only FP4 compression will be used leveraging the Marlin kernel`),
		Say: func(f diagnose.Match, c diagnose.Context) (string, string) {
			return "vLLM runs the FP4 weights through the Marlin weight-only fallback: little or no gain over FP8",
				"prefer an FP8 checkpoint with vLLM on this box, or serve the FP4 checkpoint with SGLang or TensorRT-LLM"
		}},
}

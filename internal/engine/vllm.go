package engine

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
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
	})
}

var (
	upstreamTag = regexp.MustCompile(`:v?(\d+)\.(\d+)(?:\.\d+)?`)
	ngcTag      = regexp.MustCompile(`^nvcr\.io/nvidia/vllm:(\d{2})\.(\d{2})`)
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

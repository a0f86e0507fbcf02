package plan

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
)

// Exact KV budgets. vLLM's memory profiling on unified memory counts the
// page cache and the compiler's transient heap as "non-torch" memory and
// starves (or zeroes) the KV cache (eugr/spark-vllm-docker#286,
// NVIDIA/xr-ai#462); an explicit size bypasses that arithmetic. gantry
// knows the size: KV bytes per token × context × concurrency, from the
// model's files.
//
//   - vLLM: --kv-cache-memory-bytes (CacheConfig.kv_cache_memory_bytes,
//     vllm/config/cache.py: "when not-None ignores gpu_memory_utilization";
//     NVIDIA/xr-ai#462 uses it with vLLM 0.20). --gpu-memory-utilization is
//     still checked against the free memory at start, so gantry keeps it at
//     the reservation's share.
//   - SGLang: --max-total-tokens, the token pool's size (server_args.py:
//     "The maximum number of tokens in the memory pool"), taken as a cap
//     on what --mem-fraction-static profiles.

// kvFlags sets the engine's explicit KV budget: vLLM's bytes, SGLang's
// tokens. A flag in args wins, with a warning when it differs.
func (p *Model) kvFlags(m *config.Model, cfg *config.Config) {
	switch m.Engine {
	case config.EngineVLLM:
		if p.Weights <= 0 {
			return
		}
		budget := p.Bytes - p.Weights - p.Overhead
		if budget <= 0 {
			return
		}
		if v := engine.FlagValue(m.Args, "--kv-cache-memory-bytes"); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n != budget {
				p.Findings = append(p.Findings, Finding{Level: LevelWarning, Rule: "kv-flag-differs",
					Reason: fmt.Sprintf("args set --kv-cache-memory-bytes %s; gantry's budget from memory: is %s (%d)", v, config.FormatBytes(budget), budget),
					Fix:    "your flag wins; drop it to let gantry size the KV cache from memory:, context: and concurrency:"})
			}
			return
		}
		if engine.HasFlag(m.Args, "--gpu-memory-utilization") {
			return // the user sizes vLLM's memory by fraction: theirs alone
		}
		if ok, why := vllmHasKVBytes(vllmImage(m, cfg)); !ok {
			p.Findings = append(p.Findings, Finding{Level: LevelWarning, Rule: "kv-flag-unsupported", Reason: why,
				Fix: "gantry sizes this vLLM by --gpu-memory-utilization alone; a newer image takes the exact KV size"})
			return
		}
		p.KVCacheBytes = budget
	case config.EngineSGLang:
		if p.Context <= 0 {
			return
		}
		tokens := p.Context * int64(max(m.Concurrency, 1))
		if v := engine.FlagValue(m.Args, "--max-total-tokens"); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n != tokens {
				p.Findings = append(p.Findings, Finding{Level: LevelWarning, Rule: "kv-flag-differs",
					Reason: fmt.Sprintf("args set --max-total-tokens %s; gantry's plan is %d (context %d × concurrency %d)", v, tokens, p.Context, max(m.Concurrency, 1)),
					Fix:    "your flag wins; drop it to let gantry size the token pool from context: and concurrency:"})
			}
			return
		}
		p.MaxTotalTokens = tokens
	}
}

// vllmImage is the image a vLLM model runs in, "" when native.
func vllmImage(m *config.Model, cfg *config.Config) string {
	if m.Runtime != config.RuntimeDocker {
		return ""
	}
	if m.Image != "" {
		return m.Image
	}
	if es := cfg.Engines[config.EngineVLLM]; es != nil {
		return es.Image
	}
	return ""
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

// unifiedEnv is the engine environment that helps on unified memory:
// PyTorch's expandable segments give back 6–7 GiB of the 17–19 GiB a
// vLLM loses right after the weights load on a Spark
// (nvidia/GLM-5.3-Flash-FP4-Local discussion #7). A value the model sets
// itself wins.
func (p *Model) unifiedEnv(m *config.Model, box Box) {
	if !box.Facts.Unified {
		return
	}
	switch m.Engine {
	case config.EngineVLLM, config.EngineSGLang, config.EngineTRTLLM:
	default:
		return
	}
	if _, ok := m.Env["PYTORCH_CUDA_ALLOC_CONF"]; ok {
		return
	}
	p.Env = append(p.Env, "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True")
}

// startCheck refuses, on unified memory, a vLLM --gpu-memory-utilization
// in args that its start check cannot pass: vLLM wants that share of the
// total free when it starts, and CUDA's free memory on a GB10 tops out
// near gpu.UnifiedCUDAShare of it.
func (p *Model) startCheck(m *config.Model, box Box) {
	if m.Engine != config.EngineVLLM || !box.Facts.Unified || box.Facts.Memory == nil {
		return
	}
	v := engine.FlagValue(m.Args, "--gpu-memory-utilization")
	f, err := strconv.ParseFloat(v, 64)
	if v == "" || err != nil {
		return
	}
	total := box.Facts.Memory.Total
	want := int64(f * float64(total))
	most := int64(gpu.UnifiedCUDAShare * float64(total))
	if want <= most {
		return
	}
	p.Findings = append(p.Findings, Finding{Level: LevelError, Rule: "fraction-above-unified",
		Reason: fmt.Sprintf("--gpu-memory-utilization %s of %s = %s, but CUDA gets at most %s free on this unified-memory box (%.2f of it), so vLLM's start check fails",
			v, config.FormatBytes(total), config.FormatBytes(want), config.FormatBytes(most), gpu.UnifiedCUDAShare),
		Fix: fmt.Sprintf("lower it to %.2f or less, or drop it from args and let gantry size the KV cache (--kv-cache-memory-bytes)", gpu.UnifiedCUDAShare-0.02)})
}

// MakeBox is the box a config plans for: memory.unified resolved against
// what nvidia-smi said, and memory.total — on unified memory with total:
// auto, what CUDA can get (gpu.MemInfo.Usable, giveBack being what
// gantry's own engines hold and would give back), else the GPUs' memory
// or the system's. The facts' Source says which.
func MakeBox(cfg *config.Config, facts gpu.Facts, giveBack int64) Box {
	facts.Unified = cfg.Memory.UnifiedOn(facts.Unified)
	total := int64(cfg.Memory.Total)
	switch {
	case total > 0:
	case facts.Unified && facts.Memory != nil:
		total = facts.Memory.Usable(giveBack)
		facts.Source = fmt.Sprintf("unified memory: MemAvailable %s (with %s gantry's engines hold), at most %.2f of MemTotal %s, what CUDA gets on a GB10",
			config.FormatBytes(facts.Memory.Available), config.FormatBytes(giveBack), gpu.UnifiedCUDAShare, config.FormatBytes(facts.Memory.Total))
	default:
		total = facts.TotalBytes
	}
	return Box{Facts: facts, Total: total, Budget: total - int64(cfg.Memory.Reserve)}
}

package plan

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/status"
)

// kvFlags sets the engine's explicit KV budget — its exact bytes
// (vLLM), or its token pool (SGLang) — from the model's files, context:
// and concurrency:. An explicit size bypasses the engine's own memory
// profiling, which on unified memory counts the page cache and the
// compiler's transient heap as the model's (eugr/spark-vllm-docker#286,
// NVIDIA/xr-ai#462). A flag in args wins, with a warning when it differs;
// the fraction flag still goes with the bytes, since the engine checks
// that share is free at its start.
func (p *Model) kvFlags(d *engine.Descriptor, m *config.Model, cfg *config.Config) {
	mem := d.Memory
	switch {
	case mem.KVBytes != "":
		if p.Weights <= 0 {
			return
		}
		budget := p.Bytes - p.Weights - p.Overhead
		if budget <= 0 {
			return
		}
		if v := engine.FlagValue(m.Args, mem.KVBytes); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n != budget {
				p.Findings = append(p.Findings, status.Finding{Level: LevelWarning, Rule: "kv-flag-differs",
					Reason: fmt.Sprintf("args set %s %s; gantry's budget from memory: is %s (%d)", mem.KVBytes, v, config.FormatBytes(budget), budget),
					Fix:    "your flag wins; drop it to let gantry size the KV cache from memory:, context: and concurrency:"})
			}
			return
		}
		if mem.Fraction != "" && engine.HasFlag(m.Args, mem.Fraction) {
			return // the user sizes the engine's memory by fraction: theirs alone
		}
		if mem.KVBytesIn != nil {
			if ok, why := mem.KVBytesIn(image(m, cfg)); !ok {
				p.Findings = append(p.Findings, status.Finding{Level: LevelWarning, Rule: "kv-flag-unsupported", Reason: why,
					Fix: fmt.Sprintf("gantry sizes this %s by %s alone; a newer image takes the exact KV size", d.Title, mem.Fraction)})
				return
			}
		}
		p.KVCacheBytes = budget
	case mem.TokenPool != "":
		if p.Context <= 0 {
			return
		}
		tokens := p.Context * int64(max(m.Concurrency, 1))
		if v := engine.FlagValue(m.Args, mem.TokenPool); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n != tokens {
				p.Findings = append(p.Findings, status.Finding{Level: LevelWarning, Rule: "kv-flag-differs",
					Reason: fmt.Sprintf("args set %s %s; gantry's plan is %d (context %d × concurrency %d)", mem.TokenPool, v, tokens, p.Context, max(m.Concurrency, 1)),
					Fix:    "your flag wins; drop it to let gantry size the token pool from context: and concurrency:"})
			}
			return
		}
		p.MaxTotalTokens = tokens
	}
}

// image is the image a model runs in, "" when native.
func image(m *config.Model, cfg *config.Config) string {
	if m.Runtime != config.RuntimeDocker {
		return ""
	}
	if m.Image != "" {
		return m.Image
	}
	if es := cfg.Engines[m.Engine]; es != nil {
		return es.Image
	}
	return ""
}

// unifiedEnv is the engine's environment that helps on unified memory
// (engine.Memory.UnifiedEnv). A value the model sets itself wins.
func (p *Model) unifiedEnv(d *engine.Descriptor, m *config.Model, box Box) {
	if !box.Facts.Unified {
		return
	}
	for _, kv := range d.Memory.UnifiedEnv {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := m.Env[k]; !ok {
			p.Env = append(p.Env, kv)
		}
	}
}

// startCheck refuses, on unified memory, an engine's fraction in args
// that its start check cannot pass (engines with a UnifiedCap): the
// engine wants that share of the total free when it starts, and CUDA's
// free memory on a GB10 tops out near gpu.UnifiedCUDAShare of it.
func (p *Model) startCheck(d *engine.Descriptor, m *config.Model, box Box) {
	mem := d.Memory
	if mem.UnifiedCap == 0 || !box.Facts.Unified || box.Facts.Memory == nil {
		return
	}
	v := engine.FlagValue(m.Args, mem.Fraction)
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
	p.Findings = append(p.Findings, status.Finding{Level: LevelError, Rule: "fraction-above-unified",
		Reason: fmt.Sprintf("%s %s of %s = %s, but CUDA gets at most %s free on this unified-memory box (%.2f of it), so %s's start check fails",
			mem.Fraction, v, config.FormatBytes(total), config.FormatBytes(want), config.FormatBytes(most), gpu.UnifiedCUDAShare, d.Title),
		Fix: fmt.Sprintf("lower it to %.2f or less, or drop it from args and let gantry size the KV cache (%s)", gpu.UnifiedCUDAShare-0.02, mem.KVBytes)})
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

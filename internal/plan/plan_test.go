package plan

import (
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/inventory"
)

func box(unified bool, cc string) Box {
	f := gpu.Facts{Unified: unified}
	if cc != "" {
		f.GPUs = []gpu.GPU{{Name: "NVIDIA GB10", ComputeCap: cc, Unified: unified}}
	}
	return Box{Facts: f, Total: 128 << 30, Budget: 120 << 30}
}

func inspector(m *inventory.Model) Inspector {
	return func(string) (*inventory.Model, error) { c := *m; return &c, nil }
}

func planOne(t *testing.T, yaml string, b Box, info *inventory.Model) *Model {
	t.Helper()
	c, err := config.Parse("t.yaml", []byte("models:\n  m: "+yaml+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return One(c, c.Models["m"], b, inspector(info))
}

var llama8B = &inventory.Model{Format: "safetensors", Kind: "generation", WeightBytes: 16060522496, MaxContext: 131072,
	KV: inventory.KV{BytesPerToken: 131072}}

func finding(p *Model, name string) *Finding {
	for i := range p.Findings {
		if p.Findings[i].Rule == name {
			return &p.Findings[i]
		}
	}
	return nil
}

func TestEstimate(t *testing.T) {
	p := planOne(t, "{engine: vllm, runtime: native, path: /m, concurrency: 2}", box(false, ""), llama8B)
	// weights + KV(32768 tokens × 128 KiB) × 2 + 3 GiB
	want := int64(16060522496) + 2*32768*131072 + 3<<30
	if p.Bytes != want || p.Context != DefaultContext || !strings.HasPrefix(p.Source, "estimate:") {
		t.Errorf("bytes %d (want %d) ctx %d source %q", p.Bytes, want, p.Context, p.Source)
	}
	if p.Fraction != "0.20" {
		t.Errorf("fraction %s", p.Fraction)
	}
	p = planOne(t, "{engine: vllm, runtime: native, path: /m, memory: 40GiB, context: 8192}", box(false, ""), llama8B)
	if p.Bytes != 40<<30 || p.Context != 8192 || p.Source != "memory: in the config" {
		t.Errorf("explicit: %+v", p)
	}
}

func TestVLLMCapOnUnifiedMemory(t *testing.T) {
	p := planOne(t, "{engine: vllm, runtime: native, path: /m, memory: 120GiB}", box(true, "12.1"), llama8B)
	if p.Fraction != "0.85" || finding(p, "vllm-unified-cap") == nil {
		t.Errorf("fraction %s findings %v", p.Fraction, p.Findings)
	}
}

func TestExplicitFlagWinsWithWarning(t *testing.T) {
	p := planOne(t, "{engine: vllm, runtime: native, path: /m, memory: 20GiB, args: [--gpu-memory-utilization, '0.9']}", box(false, ""), llama8B)
	if p.Fraction != "" || finding(p, "memory-flag-contradicts") == nil {
		t.Errorf("fraction %q findings %v", p.Fraction, p.Findings)
	}
}

func TestRules(t *testing.T) {
	nvfp4 := &inventory.Model{Format: "safetensors", Kind: "generation", WeightBytes: 1 << 30, MaxContext: 40960,
		Quant: inventory.Quant{Method: "modelopt", Algo: "NVFP4", Bits: 4}}
	p := planOne(t, "{engine: sglang, runtime: native, path: /m}", box(true, "12.1"), nvfp4)
	if f := finding(p, "modelopt-fp4-on-sglang-needs-flag"); f == nil || f.Level != LevelFixed || strings.Join(p.Args, " ") != "--quantization modelopt_fp4" {
		t.Errorf("modelopt: %v %v", p.Findings, p.Args)
	}
	p = planOne(t, "{engine: vllm, runtime: native, path: /m}", box(true, "12.1"), nvfp4)
	if f := finding(p, "fp4-on-vllm-sm12x"); f == nil || f.Level != LevelWarning || !strings.Contains(f.Reason, "Marlin") {
		t.Errorf("fp4 on vllm: %v", p.Findings)
	}
	p = planOne(t, "{engine: vllm, runtime: native, path: /m}", box(false, "9.0"), nvfp4)
	if finding(p, "fp4-on-vllm-sm12x") != nil {
		t.Error("FP4 warning on an SM90 box")
	}
	ct := &inventory.Model{Format: "safetensors", Kind: "generation", WeightBytes: 1 << 30, Quant: inventory.Quant{Method: "compressed-tensors", Algo: "FP8"}}
	if p = planOne(t, "{engine: sglang, runtime: native, path: /m}", box(false, ""), ct); finding(p, "compressed-tensors-on-sglang") == nil || p.Blocked() != nil {
		t.Errorf("compressed-tensors: %v", p.Findings)
	}
	gg := &inventory.Model{Format: "gguf", Kind: "generation", WeightBytes: 1 << 30}
	if p = planOne(t, "{engine: vllm, runtime: native, path: /m.gguf}", box(false, ""), gg); p.Blocked() == nil || p.Blocked().Rule != "gguf-on-hf-engine" {
		t.Errorf("gguf on vllm: %v", p.Findings)
	}
	if p = planOne(t, "{engine: llamacpp, path: /m}", box(false, ""), llama8B); p.Blocked() == nil || p.Blocked().Rule != "safetensors-on-gguf-engine" {
		t.Errorf("safetensors on llama.cpp: %v", p.Findings)
	}
	emb := &inventory.Model{Format: "safetensors", Kind: "embedding", WeightBytes: 1 << 30, MaxContext: 8192}
	if p = planOne(t, "{engine: sglang, runtime: native, path: /m}", box(false, ""), emb); finding(p, "embedding-on-sglang-needs-flag") == nil || p.Args[0] != "--is-embedding" {
		t.Errorf("embedding: %v %v", p.Findings, p.Args)
	}
	if p = planOne(t, "{engine: vllm, runtime: native, path: /m, context: 200000}", box(false, ""), llama8B); p.Blocked() == nil || p.Blocked().Rule != "context-above-max" {
		t.Errorf("context: %v", p.Findings)
	}
	if p = planOne(t, "{engine: vllm, runtime: native, path: /m, memory: 200GiB}", box(false, ""), llama8B); p.Blocked() == nil || p.Blocked().Rule != "does-not-fit" {
		t.Errorf("fit: %v", p.Findings)
	}
	if len(Rules()) < 8 {
		t.Errorf("rules %v", Rules())
	}
}

package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/inventory"
	"github.com/gantryhq/gantry/internal/status"
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

func finding(p *Model, name string) *status.Finding {
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
	if p.Fraction != "0.82" || finding(p, "vllm-unified-cap") == nil {
		t.Errorf("fraction %s findings %v", p.Fraction, p.Findings)
	}
}

// spark is a GB10 box as gantry plans for it: MemTotal 121.69 GiB, the
// budget from what CUDA can get.
func spark() Box {
	b := box(true, "12.1")
	b.Facts.Memory = &gpu.MemInfo{Total: 130664189788, Available: 113 << 30} // 121.69 GiB
	b.Total, b.Budget = 102<<30, 94<<30
	return b
}

// TestExactKVBudgets: vLLM gets --kv-cache-memory-bytes (what memory:
// leaves after weights and overhead), SGLang --max-total-tokens (context ×
// concurrency); a flag in args wins with a warning; an old vLLM image gets
// none.
func TestExactKVBudgets(t *testing.T) {
	p := planOne(t, "{engine: vllm, runtime: native, path: /m, concurrency: 2}", spark(), llama8B)
	kv := int64(2 * 32768 * 131072)
	if p.KVCacheBytes != kv {
		t.Errorf("vLLM KV bytes %d, want %d", p.KVCacheBytes, kv)
	}
	// The fraction is of MemTotal, as vLLM reckons it.
	if want := strconv.FormatFloat(float64(p.Bytes)/(121.69*(1<<30)), 'f', 2, 64); p.Fraction != want {
		t.Errorf("fraction %s, want %s", p.Fraction, want)
	}
	p = planOne(t, "{engine: vllm, runtime: native, path: /m, memory: 40GiB}", spark(), llama8B)
	if p.KVCacheBytes != 40<<30-16060522496-3<<30 {
		t.Errorf("KV bytes from memory: %d", p.KVCacheBytes)
	}
	p = planOne(t, "{engine: vllm, runtime: native, path: /m, args: [--kv-cache-memory-bytes, '1000']}", spark(), llama8B)
	if p.KVCacheBytes != 0 || finding(p, "kv-flag-differs") == nil {
		t.Errorf("args win: %d %v", p.KVCacheBytes, p.Findings)
	}
	p = planOne(t, "{engine: vllm, runtime: docker, image: 'vllm/vllm-openai:v0.9.2', path: /m}", spark(), llama8B)
	if p.KVCacheBytes != 0 || finding(p, "kv-flag-unsupported") == nil {
		t.Errorf("old image: %d %v", p.KVCacheBytes, p.Findings)
	}
	p = planOne(t, "{engine: sglang, runtime: native, path: /m, context: 16384, concurrency: 3}", spark(), llama8B)
	if p.MaxTotalTokens != 3*16384 {
		t.Errorf("SGLang tokens %d", p.MaxTotalTokens)
	}
}

func TestUnifiedEnvAndStartCheck(t *testing.T) {
	p := planOne(t, "{engine: vllm, runtime: native, path: /m}", spark(), llama8B)
	if len(p.Env) != 1 || p.Env[0] != "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True" {
		t.Errorf("env %v", p.Env)
	}
	if p := planOne(t, "{engine: vllm, runtime: native, path: /m, env: {PYTORCH_CUDA_ALLOC_CONF: 'x'}}", spark(), llama8B); len(p.Env) != 0 {
		t.Errorf("the model's own value must win: %v", p.Env)
	}
	if p := planOne(t, "{engine: vllm, runtime: native, path: /m}", box(false, "9.0"), llama8B); len(p.Env) != 0 {
		t.Errorf("a discrete GPU gets no env: %v", p.Env)
	}
	// 0.87 of 121.69 GiB = 105.9 GiB, but CUDA gets at most 102.2 GiB.
	p = planOne(t, "{engine: vllm, runtime: native, path: /m, args: [--gpu-memory-utilization, '0.87']}", spark(), llama8B)
	f := finding(p, "fraction-above-unified")
	if f == nil || f.Level != LevelError || !strings.Contains(f.Reason, "0.87 of 121.7GiB = 105.9GiB") || !strings.Contains(f.Reason, "102.2GiB") {
		t.Errorf("%+v", f)
	}
	if p := planOne(t, "{engine: vllm, runtime: native, path: /m, args: [--gpu-memory-utilization, '0.80']}", spark(), llama8B); finding(p, "fraction-above-unified") != nil {
		t.Error("0.80 fits")
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

// TestInventoryListsTheHFCache: the Hugging Face cache's snapshots are
// models on disk, named as a config's path takes them, with their repo and
// commit; a configured model whose path names one is that row.
func TestInventoryListsTheHFCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	const commit = "0123456789abcdef0123456789abcdef01234567"
	for _, repo := range []string{"models--org--a", "models--org--b"} {
		snap := filepath.Join(cache, repo, "snapshots", commit)
		os.MkdirAll(snap, 0o755)
		os.WriteFile(filepath.Join(snap, "config.json"), []byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","num_hidden_layers":2,"num_attention_heads":4,"hidden_size":64}`), 0o644)
		os.MkdirAll(filepath.Join(cache, repo, "refs"), 0o755)
		os.WriteFile(filepath.Join(cache, repo, "refs", "main"), []byte(commit), 0o644)
	}
	c, err := config.Parse("c.yaml", []byte("root: "+t.TempDir()+"\nmodels:\n  a: {engine: vllm, runtime: native, path: \"hf:org/a\", memory: 1GiB}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Inventory(c, Box{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %v %v %s %s %s", r.Name, r.OnDisk, r.Configured, r.Repo, r.Commit[:min(6, len(r.Commit))], r.Source))
	}
	want := "a true true org/a 012345 hf-cache|hf:org/b@main true false org/b 012345 hf-cache"
	if strings.Join(got, "|") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, "|"), want)
	}
}

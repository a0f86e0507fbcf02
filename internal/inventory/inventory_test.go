package inventory

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gantryhq/gantry/internal/gguf"
)

// fixtures are real config files of public models, each with a FACTS.md
// saying where it came from and what its numbers should be.
var fixtures = filepath.Join("testdata", "models")

// inspectFixture inspects one fixture, failing the test (not panicking)
// when it cannot be read.
func inspectFixture(t *testing.T, dir string) *Model {
	t.Helper()
	m, err := Inspect(filepath.Join(fixtures, dir))
	if err != nil {
		t.Fatalf("fixture %s: %v", dir, err)
	}
	return m
}

func TestFixturesKVAndQuant(t *testing.T) {
	cases := []struct {
		dir                string
		kv, sliding, win   int64
		method, algo, arch string
		bits               int
		maxCtx             int64
	}{
		{"Qwen--Qwen3-30B-A3B", 98304, 0, 0, "", "", "Qwen3MoeForCausalLM", 0, 40960},
		{"Qwen--Qwen3-8B", 147456, 0, 0, "", "", "Qwen3ForCausalLM", 0, 40960},
		{"RedHatAI--Meta-Llama-3.1-405B-Instruct-FP8", 516096, 0, 0, "compressed-tensors", "FP8", "LlamaForCausalLM", 8, 131072},
		{"deepseek-ai--DeepSeek-R1", 70272, 0, 0, "fp8", "FP8", "DeepseekV3ForCausalLM", 8, 163840},
		{"deepseek-ai--DeepSeek-V3", 70272, 0, 0, "fp8", "FP8", "DeepseekV3ForCausalLM", 8, 163840},
		{"meta-llama--Llama-3.1-8B-Instruct", 131072, 0, 0, "", "", "LlamaForCausalLM", 0, 131072},
		{"nvidia--Llama-3.1-8B-Instruct-FP4", 0, 0, 0, "modelopt", "NVFP4", "", 4, 0},
		{"nvidia--Qwen3-235B-A22B-NVFP4", 192512, 0, 0, "modelopt", "NVFP4", "Qwen3MoeForCausalLM", 4, 40960},
		{"openai--gpt-oss-120b", 73728, 36864, 128, "mxfp4", "MXFP4", "GptOssForCausalLM", 4, 131072},
		{"openai--gpt-oss-20b", 49152, 24576, 128, "mxfp4", "MXFP4", "GptOssForCausalLM", 4, 131072},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			m, err := Inspect(filepath.Join(fixtures, c.dir))
			if err != nil {
				t.Fatal(err)
			}
			if m.BytesPerToken != c.kv || m.SlidingBytesPerToken != c.sliding || m.Window != c.win {
				t.Errorf("KV %d (sliding %d, window %d), want %d (%d, %d)", m.BytesPerToken, m.SlidingBytesPerToken, m.Window, c.kv, c.sliding, c.win)
			}
			if m.Quant.Method != c.method || m.Quant.Algo != c.algo || m.Quant.Bits != c.bits {
				t.Errorf("quant %+v, want %s %s %d", m.Quant, c.method, c.algo, c.bits)
			}
			if m.Architecture != c.arch || m.MaxContext != c.maxCtx {
				t.Errorf("arch %q ctx %d", m.Architecture, m.MaxContext)
			}
			if c.kv > 0 && m.Kind != "generation" {
				t.Errorf("kind %s", m.Kind)
			}
		})
	}
	// The words a user reads.
	m := inspectFixture(t, "deepseek-ai--DeepSeek-V3")
	if s := m.Quant.String(); s != "FP8 (e4m3, block 128×128, dynamic activations)" {
		t.Errorf("DeepSeek quant %q", s)
	}
	m = inspectFixture(t, "RedHatAI--Meta-Llama-3.1-405B-Instruct-FP8")
	if s := m.Quant.String(); s != "FP8 (compressed-tensors, naive-quantized)" {
		t.Errorf("RedHat quant %q", s)
	}
	m = inspectFixture(t, "nvidia--Qwen3-235B-A22B-NVFP4")
	if m.Quant.KVCache != "FP8" || !strings.Contains(m.Quant.String(), "NVFP4 (modelopt") {
		t.Errorf("ModelOpt quant %+v %q", m.Quant, m.Quant.String())
	}
}

func TestKVBytesCapsSlidingLayers(t *testing.T) {
	kv := KV{BytesPerToken: 49152, SlidingBytesPerToken: 24576, Window: 128}
	if got := kv.Bytes(1000); got != 24576*1000+24576*128 {
		t.Errorf("got %d", got)
	}
	if got := kv.Bytes(100); got != 49152*100 {
		t.Errorf("short context: %d", got)
	}
}

// st is one tensor of a header to write.
type st struct {
	name  string
	dtype string
	shape []int64
}

// writeSafetensors writes a header and a sparse data section: the file has
// the exact size of the real one and no weights.
func writeSafetensors(t testing.TB, path string, tensors []st) int64 {
	t.Helper()
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	off := int64(0)
	for _, x := range tensors {
		n := int64(dtypeBytes(x.dtype))
		for _, d := range x.shape {
			n *= d
		}
		hdr[x.name] = map[string]any{"dtype": x.dtype, "shape": x.shape, "data_offsets": []int64{off, off + n}}
		off += n
	}
	b, _ := json.Marshal(hdr)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	binary.Write(f, binary.LittleEndian, uint64(len(b)))
	f.Write(b)
	if err := f.Truncate(8 + int64(len(b)) + off); err != nil {
		t.Fatal(err)
	}
	return off
}

// llamaTensors lists the tensors of a Llama-style checkpoint.
func llamaTensors(layers, hidden, inter, heads, kvHeads, headDim, vocab int64, qkNorm bool) []st {
	ts := []st{{"model.embed_tokens.weight", "BF16", []int64{vocab, hidden}}, {"model.norm.weight", "BF16", []int64{hidden}},
		{"lm_head.weight", "BF16", []int64{vocab, hidden}}}
	for l := int64(0); l < layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			st{p + "self_attn.q_proj.weight", "BF16", []int64{heads * headDim, hidden}},
			st{p + "self_attn.k_proj.weight", "BF16", []int64{kvHeads * headDim, hidden}},
			st{p + "self_attn.v_proj.weight", "BF16", []int64{kvHeads * headDim, hidden}},
			st{p + "self_attn.o_proj.weight", "BF16", []int64{hidden, heads * headDim}},
			st{p + "mlp.gate_proj.weight", "BF16", []int64{inter, hidden}},
			st{p + "mlp.up_proj.weight", "BF16", []int64{inter, hidden}},
			st{p + "mlp.down_proj.weight", "BF16", []int64{hidden, inter}},
			st{p + "input_layernorm.weight", "BF16", []int64{hidden}},
			st{p + "post_attention_layernorm.weight", "BF16", []int64{hidden}},
		)
		if qkNorm {
			ts = append(ts, st{p + "self_attn.q_norm.weight", "BF16", []int64{headDim}}, st{p + "self_attn.k_norm.weight", "BF16", []int64{headDim}})
		}
	}
	return ts
}

// shardedModel copies a fixture's config.json and writes its tensors over
// n shards with an index, as on the Hub.
func shardedModel(t testing.TB, dir, fixture string, tensors []st, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(fixtures, fixture, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	wm := map[string]string{}
	per := (len(tensors) + n - 1) / n
	total := int64(0)
	for i := 0; i < n; i++ {
		part := tensors[i*per : min((i+1)*per, len(tensors))]
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n)
		total += writeSafetensors(t, filepath.Join(dir, name), part)
		for _, x := range part {
			wm[x.name] = name
		}
	}
	ix, _ := json.Marshal(map[string]any{"metadata": map[string]int64{"total_size": total}, "weight_map": wm})
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), ix, 0o644)
}

func TestExactWeightBytesFromHeaders(t *testing.T) {
	root := t.TempDir()
	// Published totals (FACTS.md): Llama-3.1-8B 16,060,522,496 bytes
	// (8,030,261,248 params); Qwen3-8B 16,381,470,720 bytes.
	shardedModel(t, filepath.Join(root, "llama", "Llama-3.1-8B-Instruct"), "meta-llama--Llama-3.1-8B-Instruct",
		llamaTensors(32, 4096, 14336, 32, 8, 128, 128256, false), 4)
	shardedModel(t, filepath.Join(root, "qwen3", "Qwen3-8B"), "Qwen--Qwen3-8B",
		llamaTensors(36, 4096, 12288, 32, 8, 128, 151936, true), 5)
	ms, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("found %d models", len(ms))
	}
	want := map[string][2]int64{
		"llama/Llama-3.1-8B-Instruct": {16060522496, 8030261248},
		"qwen3/Qwen3-8B":              {16381470720, 8190735360},
	}
	for _, m := range ms {
		w := want[m.Name]
		if m.WeightBytes != w[0] || m.Params != w[1] || m.Format != "safetensors" || m.DType != "bfloat16" || len(m.Problems) > 0 {
			t.Errorf("%s: %d bytes, %d params, format %s, dtype %s, problems %v; want %d, %d", m.Name, m.WeightBytes, m.Params, m.Format, m.DType, m.Problems, w[0], w[1])
		}
	}
}

func TestTinyGGUF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	written, err := gguf.TinyLlama(path, gguf.Tiny{})
	if err != nil {
		t.Fatal(err)
	}
	var params int64
	for _, w := range written {
		params += int64(len(w.Data))
	}
	m, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != "gguf" || m.Architecture != "llama" || m.Params != params || m.WeightBytes != params*4 || m.Quant.Algo != "F32" {
		t.Errorf("%+v; want %d params", m, params)
	}
	if m.BytesPerToken != 2*2*4*16*2 || m.MaxContext != 512 {
		t.Errorf("kv %d ctx %d", m.BytesPerToken, m.MaxContext)
	}
}

func TestUntrustedFilesDoNotStopTheScan(t *testing.T) {
	root := t.TempDir()
	bad := func(name string, b []byte) {
		d := filepath.Join(root, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "model.safetensors"), b, 0o644)
	}
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<60)
	bad("huge-header", huge)
	trunc := make([]byte, 8)
	binary.LittleEndian.PutUint64(trunc, 1000)
	bad("truncated", append(trunc, []byte(`{"a":`)...))
	// A GGUF that claims 2^40 tensors.
	g := []byte("GGUF\x03\x00\x00\x00")
	g = binary.LittleEndian.AppendUint64(g, 1<<40)
	g = binary.LittleEndian.AppendUint64(g, 0)
	os.WriteFile(filepath.Join(root, "hostile.gguf"), g, 0o644)
	// A symlink loop.
	os.MkdirAll(filepath.Join(root, "loop"), 0o755)
	os.Symlink("..", filepath.Join(root, "loop", "up"))
	os.Symlink("self", filepath.Join(root, "self"))
	// And one good model, found despite the rest.
	shardedModel(t, filepath.Join(root, "good"), "Qwen--Qwen3-8B", llamaTensors(1, 64, 64, 4, 2, 16, 100, true), 1)

	ms, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*Model{}
	for _, m := range ms {
		got[m.Name] = m
	}
	for _, n := range []string{"huge-header", "truncated", "hostile.gguf"} {
		if m := got[n]; m == nil || len(m.Problems) == 0 {
			t.Errorf("%s: want an entry with a problem, got %+v", n, m)
		}
	}
	if m := got["good"]; m == nil || len(m.Problems) != 0 || m.WeightBytes == 0 {
		t.Errorf("good model: %+v", m)
	}
}

func FuzzSafetensorsHeader(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Add(append([]byte{40, 0, 0, 0, 0, 0, 0, 0}, []byte(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseSafetensors(strings.NewReader(string(b)), int64(len(b))) // no panic, no unbounded allocation
	})
}

// BenchmarkScan scans 50 models of 40 GiB of sparse safetensors each (2 TB).
func BenchmarkScan(b *testing.B) {
	root := b.TempDir()
	tensors := llamaTensors(32, 4096, 14336, 32, 8, 128, 128256, false)
	for i := 0; i < 50; i++ {
		dir := filepath.Join(root, fmt.Sprintf("m%02d", i))
		shardedModel(b, dir, "meta-llama--Llama-3.1-8B-Instruct", tensors, 4)
		// Pad to 40 GiB with a sparse extra shard.
		writeSafetensors(b, filepath.Join(dir, "extra.safetensors"), []st{{"pad", "BF16", []int64{12 << 30}}})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ms, err := Scan(root)
		if err != nil || len(ms) != 50 {
			b.Fatal(err, len(ms))
		}
	}
	b.StopTimer()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB") // whole test process, the bound that matters
	}
}

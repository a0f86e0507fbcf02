package hubtest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Tensor is one entry of a safetensors header.
type Tensor struct {
	Name  string
	DType string // BF16, F32, U8, …
	Shape []int64
}

// Bytes is the tensor's data size.
func (t Tensor) Bytes() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	switch t.DType {
	case "F32", "I32", "U32":
		return n * 4
	case "F16", "BF16", "I16":
		return n * 2
	case "F64", "I64":
		return n * 8
	}
	return n // U8, I8, F8_E4M3, …
}

// config is the part of a config.json the builder reads.
type config struct {
	Architectures      []string `json:"architectures"`
	ModelType          string   `json:"model_type"`
	HiddenSize         int64    `json:"hidden_size"`
	Intermediate       int64    `json:"intermediate_size"`
	Layers             int64    `json:"num_hidden_layers"`
	Heads              int64    `json:"num_attention_heads"`
	KVHeads            int64    `json:"num_key_value_heads"`
	HeadDim            int64    `json:"head_dim"`
	Vocab              int64    `json:"vocab_size"`
	TieEmbeddings      bool     `json:"tie_word_embeddings"`
	AttentionBias      bool     `json:"attention_bias"`
	LocalExperts       int64    `json:"num_local_experts"`
	Experts            int64    `json:"num_experts"`
	MoEIntermediate    int64    `json:"moe_intermediate_size"`
	TorchDType         string   `json:"torch_dtype"`
	QuantizationConfig *struct {
		QuantMethod string `json:"quant_method"`
	} `json:"quantization_config"`
}

// TensorsFor lists the tensors of the checkpoint a config.json describes,
// with the names and shapes Hugging Face transformers saves: Llama and
// Qwen2/Qwen3 dense models, Qwen3 MoE, and gpt-oss (MXFP4 experts: U8
// blocks of 16 bytes per 32 values and a U8 scale per block). Checked
// against the published totals: Qwen3-8B 16,381,470,720 bytes in 399
// tensors, gpt-oss-20b 13,761,264,768 bytes (the FACTS.md files beside the
// configs in internal/inventory/testdata).
func TensorsFor(configJSON []byte) ([]Tensor, error) {
	var c config
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if c.HiddenSize <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.Vocab <= 0 {
		return nil, fmt.Errorf("config.json lacks hidden_size, num_hidden_layers, num_attention_heads or vocab_size")
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 {
		c.HeadDim = c.HiddenSize / c.Heads
	}
	dt := "BF16"
	if strings.EqualFold(c.TorchDType, "float16") {
		dt = "F16"
	}
	h, q, kv := c.HiddenSize, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	var out []Tensor
	add := func(name, dtype string, shape ...int64) {
		out = append(out, Tensor{Name: name, DType: dtype, Shape: shape})
	}
	add("model.embed_tokens.weight", dt, c.Vocab, h)
	add("model.norm.weight", dt, h)
	if !c.TieEmbeddings {
		add("lm_head.weight", dt, c.Vocab, h)
	}
	gptOSS := c.ModelType == "gpt_oss"
	for i := int64(0); i < c.Layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", dt, h)
		add(p+"post_attention_layernorm.weight", dt, h)
		add(p+"self_attn.q_proj.weight", dt, q, h)
		add(p+"self_attn.k_proj.weight", dt, kv, h)
		add(p+"self_attn.v_proj.weight", dt, kv, h)
		add(p+"self_attn.o_proj.weight", dt, h, q)
		if c.AttentionBias {
			add(p+"self_attn.q_proj.bias", dt, q)
			add(p+"self_attn.k_proj.bias", dt, kv)
			add(p+"self_attn.v_proj.bias", dt, kv)
			if gptOSS {
				add(p+"self_attn.o_proj.bias", dt, h)
			}
		}
		if strings.HasPrefix(c.ModelType, "qwen3") {
			add(p+"self_attn.q_norm.weight", dt, c.HeadDim)
			add(p+"self_attn.k_norm.weight", dt, c.HeadDim)
		}
		switch {
		case gptOSS:
			e, in := c.LocalExperts, c.Intermediate
			add(p+"self_attn.sinks", dt, c.Heads)
			add(p+"mlp.router.weight", dt, e, h)
			add(p+"mlp.router.bias", dt, e)
			add(p+"mlp.experts.gate_up_proj_blocks", "U8", e, 2*in, h/32, 16)
			add(p+"mlp.experts.gate_up_proj_scales", "U8", e, 2*in, h/32)
			add(p+"mlp.experts.gate_up_proj_bias", dt, e, 2*in)
			add(p+"mlp.experts.down_proj_blocks", "U8", e, h, in/32, 16)
			add(p+"mlp.experts.down_proj_scales", "U8", e, h, in/32)
			add(p+"mlp.experts.down_proj_bias", dt, e, h)
		case c.Experts > 0:
			in := c.MoEIntermediate
			add(p+"mlp.gate.weight", dt, c.Experts, h)
			for x := int64(0); x < c.Experts; x++ {
				ep := fmt.Sprintf("%smlp.experts.%d.", p, x)
				add(ep+"gate_proj.weight", dt, in, h)
				add(ep+"up_proj.weight", dt, in, h)
				add(ep+"down_proj.weight", dt, h, in)
			}
		default:
			add(p+"mlp.gate_proj.weight", dt, c.Intermediate, h)
			add(p+"mlp.up_proj.weight", dt, c.Intermediate, h)
			add(p+"mlp.down_proj.weight", dt, h, c.Intermediate)
		}
	}
	return out, nil
}

// SafetensorsHeader is the head of a safetensors file holding tensors in
// order: the 8-byte little-endian length, then the JSON header padded
// with spaces to 8 bytes (as the safetensors library writes it). It
// returns the head and the size of the data section after it.
func SafetensorsHeader(tensors []Tensor) (head []byte, data int64) {
	var b strings.Builder
	b.WriteString(`{"__metadata__":{"format":"pt"}`)
	off := int64(0)
	for _, t := range tensors {
		shape, _ := json.Marshal(t.Shape)
		fmt.Fprintf(&b, `,%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, t.Name, t.DType, shape, off, off+t.Bytes())
		off += t.Bytes()
	}
	b.WriteString("}")
	js := b.String()
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js += strings.Repeat(" ", pad)
	}
	head = make([]byte, 8, 8+len(js))
	binary.LittleEndian.PutUint64(head, uint64(len(js)))
	return append(head, js...), off
}

// ShardSize is where Checkpoint starts a new shard (transformers'
// save_pretrained default max_shard_size, "5GB").
const ShardSize = 5_000_000_000

// Checkpoint builds the files of a sparse checkpoint from a real
// config.json: config.json itself, safetensors shards with real headers
// and zeros for weights (model.safetensors alone when it fits one shard),
// and model.safetensors.index.json. extra files join them.
func Checkpoint(configJSON []byte, extra ...*File) ([]*File, error) {
	tensors, err := TensorsFor(configJSON)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(tensors, func(i, j int) bool { return layerOrder(tensors[i].Name) < layerOrder(tensors[j].Name) })
	var shards [][]Tensor
	size := int64(0)
	for _, t := range tensors {
		if len(shards) == 0 || size+t.Bytes() > ShardSize && size > 0 {
			shards = append(shards, nil)
			size = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], t)
		size += t.Bytes()
	}
	files := []*File{Bytes("config.json", configJSON)}
	weightMap := map[string]string{}
	total := int64(0)
	for i, sh := range shards {
		name := "model.safetensors"
		if len(shards) > 1 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		}
		head, data := SafetensorsHeader(sh)
		files = append(files, Sparse(name, head, int64(len(head))+data, int64(len(head))))
		for _, t := range sh {
			weightMap[t.Name] = name
		}
		total += data
	}
	if len(shards) > 1 {
		ix, _ := json.MarshalIndent(map[string]any{"metadata": map[string]int64{"total_size": total}, "weight_map": weightMap}, "", "  ")
		files = append(files, Bytes("model.safetensors.index.json", ix))
	}
	return append(files, extra...), nil
}

// layerOrder sorts tensors as checkpoints lay them out: embeddings, the
// layers in order, then the rest.
func layerOrder(name string) int {
	var n int
	if _, err := fmt.Sscanf(name, "model.layers.%d.", &n); err == nil {
		return n + 1
	}
	if strings.HasPrefix(name, "model.embed") {
		return 0
	}
	return 1 << 30
}

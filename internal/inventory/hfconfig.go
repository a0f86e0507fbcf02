package inventory

import (
	"encoding/json"
	"fmt"
	"strings"
)

// hfConfig holds the config.json fields gantry reads. Text models of
// multimodal checkpoints keep them under text_config.
type hfConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	TorchDType            string          `json:"torch_dtype"`
	DType                 string          `json:"dtype"`
	HiddenSize            int64           `json:"hidden_size"`
	NumHiddenLayers       int64           `json:"num_hidden_layers"`
	NumAttentionHeads     int64           `json:"num_attention_heads"`
	NumKeyValueHeads      int64           `json:"num_key_value_heads"`
	HeadDim               int64           `json:"head_dim"`
	MaxPositionEmbeddings int64           `json:"max_position_embeddings"`
	KVLoraRank            int64           `json:"kv_lora_rank"`
	QKRopeHeadDim         int64           `json:"qk_rope_head_dim"`
	SlidingWindow         *int64          `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	LayerTypes            []string        `json:"layer_types"`
	VocabSize             int64           `json:"vocab_size"`
	Quantization          json.RawMessage `json:"quantization_config"`
	TextConfig            *hfConfig       `json:"text_config"`
}

// text returns the config that describes the language model.
func (c *hfConfig) text() *hfConfig {
	if c.TextConfig != nil && c.TextConfig.NumHiddenLayers > 0 {
		t := *c.TextConfig
		if t.ModelType == "" {
			t.ModelType = c.ModelType
		}
		if len(t.Architectures) == 0 {
			t.Architectures = c.Architectures
		}
		if t.TorchDType == "" {
			t.TorchDType = c.TorchDType
		}
		if len(t.Quantization) == 0 {
			t.Quantization = c.Quantization
		}
		return &t
	}
	return c
}

// kvBytesPerElement is the KV cache's element size: the model's dtype
// (engines keep the cache in it unless told otherwise).
func kvBytesPerElement(dtype string) int64 {
	switch strings.ToLower(dtype) {
	case "float32", "fp32":
		return 4
	}
	return 2
}

// KV describes the KV cache a model needs per token.
type KV struct {
	// BytesPerToken counts every layer as full attention (MLA: the latent).
	BytesPerToken int64 `json:"kv_bytes_per_token"`
	// SlidingBytesPerToken is the part of BytesPerToken in sliding-window
	// layers; those hold at most Window tokens.
	SlidingBytesPerToken int64 `json:"kv_sliding_bytes_per_token,omitempty"`
	Window               int64 `json:"sliding_window,omitempty"`
	MLA                  bool  `json:"mla,omitempty"`
}

// Bytes is the KV cache for one sequence of ctx tokens, sliding-window
// layers capped at their window.
func (k KV) Bytes(ctx int64) int64 {
	full := k.BytesPerToken - k.SlidingBytesPerToken
	sl := ctx
	if k.Window > 0 && sl > k.Window {
		sl = k.Window
	}
	return full*ctx + k.SlidingBytesPerToken*sl
}

// kvOf works out the KV cache per token from config.json: full attention
// 2 × layers × kv_heads × head_dim × bytes; MLA (DeepSeek) layers ×
// (kv_lora_rank + qk_rope_head_dim) × bytes.
func kvOf(c *hfConfig) (KV, error) {
	el := kvBytesPerElement(c.TorchDType + c.DType)
	if c.NumHiddenLayers <= 0 {
		return KV{}, fmt.Errorf("config.json has no num_hidden_layers")
	}
	if c.KVLoraRank > 0 {
		return KV{BytesPerToken: c.NumHiddenLayers * (c.KVLoraRank + c.QKRopeHeadDim) * el, MLA: true}, nil
	}
	heads := c.NumAttentionHeads
	kvHeads := c.NumKeyValueHeads
	if kvHeads == 0 {
		kvHeads = heads
	}
	hd := c.HeadDim
	if hd == 0 && heads > 0 {
		hd = c.HiddenSize / heads
	}
	if kvHeads <= 0 || hd <= 0 {
		return KV{}, fmt.Errorf("config.json lacks attention heads or head_dim")
	}
	perLayer := 2 * kvHeads * hd * el
	kv := KV{BytesPerToken: perLayer * c.NumHiddenLayers}
	slidingOn := c.SlidingWindow != nil && *c.SlidingWindow > 0 && (c.UseSlidingWindow == nil || *c.UseSlidingWindow)
	if slidingOn {
		kv.Window = *c.SlidingWindow
		if len(c.LayerTypes) > 0 {
			n := int64(0)
			for _, t := range c.LayerTypes {
				if t == "sliding_attention" {
					n++
				}
			}
			kv.SlidingBytesPerToken = n * perLayer
		} else {
			kv.SlidingBytesPerToken = kv.BytesPerToken // every layer slides (Mistral style)
		}
		if kv.SlidingBytesPerToken == 0 {
			kv.Window = 0
		}
	}
	return kv, nil
}

// Kind says what a model is for.
func kindOf(c *hfConfig) string {
	for _, a := range c.Architectures {
		l := strings.ToLower(a)
		switch {
		case strings.Contains(l, "sequenceclassification") || strings.Contains(l, "rerank") || strings.Contains(l, "crossencoder"):
			return "rerank"
		case strings.HasSuffix(l, "model") && !strings.Contains(l, "causallm"),
			strings.Contains(l, "embedding"), strings.Contains(l, "bertmodel"), strings.Contains(l, "xlmroberta"):
			return "embedding"
		}
	}
	switch c.ModelType {
	case "bert", "xlm-roberta", "nomic_bert", "roberta":
		return "embedding"
	}
	return "generation"
}

// Quant is a checkpoint's quantization in plain words.
type Quant struct {
	// Method is the tool or config method: fp8, compressed-tensors,
	// modelopt, mxfp4, awq, gptq, bitsandbytes, gguf; "" when none.
	Method string `json:"method"`
	// Algo is the scheme: FP8, NVFP4, MXFP4, W4A16, INT4, Q4_K_M, …
	Algo string `json:"algo"`
	// Bits is the weight width.
	Bits int `json:"bits"`
	// Format is the method's own format word (e4m3, naive-quantized,
	// float-quantized, nvfp4-pack-quantized, …) and details.
	Format string `json:"format"`
	// KVCache names a quantized KV cache the checkpoint declares (FP8).
	KVCache string `json:"kv_cache,omitempty"`
}

// String is the quantization in a few words, "none" for none.
func (q Quant) String() string {
	if q.Method == "" {
		return "none"
	}
	s := q.Algo
	if s == "" {
		s = strings.ToUpper(q.Method)
	}
	if q.Method != strings.ToLower(q.Algo) && q.Method != "gguf" {
		s += " (" + q.Method
		if q.Format != "" {
			s += ", " + q.Format
		}
		s += ")"
	} else if q.Format != "" {
		s += " (" + q.Format + ")"
	}
	return s
}

// quantOf reads config.json's quantization_config.
func quantOf(raw json.RawMessage) Quant {
	if len(raw) == 0 || string(raw) == "null" {
		return Quant{}
	}
	var q struct {
		QuantMethod     string          `json:"quant_method"`
		Fmt             string          `json:"fmt"`
		WeightBlockSize []int           `json:"weight_block_size"`
		Activation      string          `json:"activation_scheme"`
		Format          string          `json:"format"`
		Bits            int             `json:"bits"`
		WBit            int             `json:"w_bit"`
		GroupSize       int             `json:"group_size"`
		QGroupSize      int             `json:"q_group_size"`
		QuantAlgo       string          `json:"quant_algo"`
		KVCacheQuant    string          `json:"kv_cache_quant_algo"`
		ConfigGroups    json.RawMessage `json:"config_groups"`
		LoadIn4bit      bool            `json:"load_in_4bit"`
		LoadIn8bit      bool            `json:"load_in_8bit"`
	}
	if json.Unmarshal(raw, &q) != nil {
		return Quant{Method: "unknown"}
	}
	m := strings.ToLower(q.QuantMethod)
	switch m {
	case "fp8":
		out := Quant{Method: "fp8", Algo: "FP8", Bits: 8, Format: q.Fmt}
		if len(q.WeightBlockSize) == 2 {
			out.Format = strings.TrimPrefix(out.Format+fmt.Sprintf(", block %d×%d", q.WeightBlockSize[0], q.WeightBlockSize[1]), ", ")
		}
		if q.Activation != "" {
			out.Format += ", " + q.Activation + " activations"
		}
		return out
	case "compressed-tensors":
		out := Quant{Method: m, Format: q.Format}
		out.Algo, out.Bits = compressedScheme(q.ConfigGroups, q.Format)
		return out
	case "modelopt":
		return modeloptQuant(q.QuantAlgo, q.KVCacheQuant)
	case "mxfp4":
		return Quant{Method: "mxfp4", Algo: "MXFP4", Bits: 4}
	case "awq", "gptq", "gptq_marlin", "awq_marlin":
		bits := q.Bits
		if bits == 0 {
			bits = q.WBit
		}
		gs := q.GroupSize
		if gs == 0 {
			gs = q.QGroupSize
		}
		out := Quant{Method: strings.TrimSuffix(m, "_marlin"), Bits: bits, Algo: fmt.Sprintf("INT%d", bits)}
		if gs > 0 {
			out.Format = fmt.Sprintf("group size %d", gs)
		}
		return out
	case "bitsandbytes":
		bits := 8
		if q.LoadIn4bit {
			bits = 4
		}
		return Quant{Method: m, Bits: bits, Algo: fmt.Sprintf("INT%d", bits)}
	}
	return Quant{Method: m, Algo: strings.ToUpper(m)}
}

// compressedScheme names a compressed-tensors scheme from its config groups:
// FP8 (float 8-bit weights and activations), NVFP4, W4A16, W8A8, …
func compressedScheme(groups json.RawMessage, format string) (string, int) {
	var gs map[string]struct {
		Weights *struct {
			Type      string `json:"type"`
			NumBits   int    `json:"num_bits"`
			GroupSize *int   `json:"group_size"`
		} `json:"weights"`
		Input *struct {
			Type    string `json:"type"`
			NumBits int    `json:"num_bits"`
		} `json:"input_activations"`
	}
	json.Unmarshal(groups, &gs) //nolint:errcheck // an odd config names no scheme
	for _, g := range gs {
		w := g.Weights
		if w == nil {
			continue
		}
		switch {
		case strings.Contains(format, "nvfp4") || w.Type == "float" && w.NumBits == 4:
			return "NVFP4", 4
		case w.Type == "float" && w.NumBits == 8:
			return "FP8", 8
		case g.Input == nil:
			return fmt.Sprintf("W%dA16", w.NumBits), w.NumBits
		default:
			return fmt.Sprintf("W%dA%d", w.NumBits, g.Input.NumBits), w.NumBits
		}
	}
	return "", 0
}

func modeloptQuant(algo, kv string) Quant {
	out := Quant{Method: "modelopt", Algo: strings.ToUpper(algo), KVCache: kv}
	switch {
	case strings.Contains(out.Algo, "FP4"):
		out.Bits = 4
	case strings.Contains(out.Algo, "FP8"), strings.Contains(out.Algo, "INT8"):
		out.Bits = 8
	case strings.Contains(out.Algo, "INT4") || strings.Contains(out.Algo, "W4A"):
		out.Bits = 4
	}
	return out
}

// hfQuantConfig is ModelOpt's hf_quant_config.json.
type hfQuantConfig struct {
	Producer struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"producer"`
	Quantization struct {
		QuantAlgo string `json:"quant_algo"`
		KVCache   string `json:"kv_cache_quant_algo"`
		GroupSize int    `json:"group_size"`
	} `json:"quantization"`
}

func (h hfQuantConfig) quant() Quant {
	q := modeloptQuant(h.Quantization.QuantAlgo, h.Quantization.KVCache)
	if h.Producer.Name != "" {
		q.Method = h.Producer.Name
	}
	if h.Quantization.GroupSize > 0 {
		q.Format = fmt.Sprintf("group size %d", h.Quantization.GroupSize)
	}
	return q
}

package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
)

// KV is one metadata entry to write. Value is one of uint32, int32,
// float32, bool, string, uint64, []string, []float32, []int32.
type KV struct {
	Key   string
	Value any
}

// WriteTensor is a tensor to write: its values with their dims (ggml
// order: the first dim varies fastest), stored as Type — F32 (the zero
// value), F16 or Q8_0 (whose first dim must be a multiple of 32).
type WriteTensor struct {
	Name string
	Dims []uint64
	Data []float32
	Type GGMLType
}

// Write writes a GGUF v3 file with the metadata and F32 tensors given.
func Write(w io.Writer, kvs []KV, tensors []WriteTensor) error {
	bw := bufio.NewWriter(w)
	cw := &countWriter{w: bw}
	le := binary.LittleEndian
	put := func(v any) { binary.Write(cw, le, v) } //nolint:errcheck // countWriter records the first error
	str := func(s string) { put(uint64(len(s))); io.WriteString(cw, s) }
	cw.Write([]byte(Magic)) //nolint:errcheck // countWriter records the first error
	put(uint32(3))
	put(uint64(len(tensors)))
	put(uint64(len(kvs)))
	for _, kv := range kvs {
		str(kv.Key)
		switch v := kv.Value.(type) {
		case uint32:
			put(TypeUint32)
			put(v)
		case int32:
			put(TypeInt32)
			put(v)
		case uint64:
			put(TypeUint64)
			put(v)
		case float32:
			put(TypeFloat32)
			put(v)
		case bool:
			put(TypeBool)
			b := uint8(0)
			if v {
				b = 1
			}
			put(b)
		case string:
			put(TypeString)
			str(v)
		case []string:
			put(TypeArray)
			put(TypeString)
			put(uint64(len(v)))
			for _, s := range v {
				str(s)
			}
		case []float32:
			put(TypeArray)
			put(TypeFloat32)
			put(uint64(len(v)))
			put(v)
		case []int32:
			put(TypeArray)
			put(TypeInt32)
			put(uint64(len(v)))
			put(v)
		default:
			return fmt.Errorf("gguf: key %s: unsupported value type %T", kv.Key, kv.Value)
		}
	}
	const align = 32
	offset := uint64(0)
	for _, t := range tensors {
		n := uint64(1)
		for _, d := range t.Dims {
			n *= d
		}
		if n != uint64(len(t.Data)) {
			return fmt.Errorf("gguf: tensor %s: dims %v hold %d values, data has %d", t.Name, t.Dims, n, len(t.Data))
		}
		size, err := encodedSize(t)
		if err != nil {
			return err
		}
		str(t.Name)
		put(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			put(d)
		}
		put(uint32(t.Type))
		put(offset)
		offset += (size + align - 1) / align * align
	}
	pad := func() {
		for cw.n%align != 0 {
			cw.Write([]byte{0}) //nolint:errcheck // countWriter records the first error
		}
	}
	pad()
	for _, t := range tensors {
		cw.Write(encode(t)) //nolint:errcheck // countWriter records the first error
		pad()
	}
	if cw.err != nil {
		return cw.err
	}
	return bw.Flush()
}

// encodedSize is the bytes t takes stored as its type.
func encodedSize(t WriteTensor) (uint64, error) {
	n := uint64(len(t.Data))
	switch t.Type {
	case F32:
		return n * 4, nil
	case F16:
		return n * 2, nil
	case Q8_0:
		if len(t.Dims) == 0 || t.Dims[0]%32 != 0 {
			return 0, fmt.Errorf("gguf: tensor %s: Q8_0 needs a first dim that is a multiple of 32, not %v", t.Name, t.Dims)
		}
		return n / 32 * 34, nil
	}
	return 0, fmt.Errorf("gguf: tensor %s: writing %v is not supported (F32, F16, Q8_0)", t.Name, t.Type)
}

// encode stores t's values as its type: Q8_0 is ggml's block of 32
// values, an F16 scale (the largest magnitude / 127) and 32 int8s
// (ggml-quants.c quantize_row_q8_0_ref).
func encode(t WriteTensor) []byte {
	le := binary.LittleEndian
	switch t.Type {
	case F16:
		out := make([]byte, 0, len(t.Data)*2)
		for _, v := range t.Data {
			out = le.AppendUint16(out, f16(v))
		}
		return out
	case Q8_0:
		out := make([]byte, 0, len(t.Data)/32*34)
		for b := 0; b+32 <= len(t.Data); b += 32 {
			amax := float32(0)
			for _, v := range t.Data[b : b+32] {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			d := amax / 127
			id := float32(0)
			if d != 0 {
				id = 1 / d
			}
			out = le.AppendUint16(out, f16(d))
			for _, v := range t.Data[b : b+32] {
				out = append(out, byte(int8(math.Round(float64(v*id)))))
			}
		}
		return out
	}
	out := make([]byte, 0, len(t.Data)*4)
	for _, v := range t.Data {
		out = le.AppendUint32(out, math.Float32bits(v))
	}
	return out
}

// f16 converts to IEEE half precision, rounding to nearest even (values
// beyond its range become infinity; subnormals are kept).
func f16(v float32) uint16 {
	b := math.Float32bits(v)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff == 0:
		return sign
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		h := mant >> shift
		if rem := mant & (1<<shift - 1); rem > 1<<(shift-1) || rem == 1<<(shift-1) && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // a carry into the exponent is still the right rounding
	}
	return sign | uint16(h)
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// Tiny describes the tiny Llama model TinyLlama writes.
type Tiny struct {
	Blocks  int // transformer blocks (default 2)
	Embd    int // embedding length (default 64)
	Heads   int // attention heads (default 4)
	FF      int // feed-forward length (default 128)
	Context int // context length (default 512)
	Seed    uint64
	// Type stores the 2-D weights as F32 (default), F16 or Q8_0; norms
	// stay F32, as llama.cpp's converter keeps them.
	Type GGMLType
}

// TinyVocab is the tiny model's vocabulary: <unk>, <s>, </s>, the 256 byte
// tokens and a few letters, SentencePiece style.
func TinyVocab() (tokens []string, scores []float32, types []int32) {
	tokens = []string{"<unk>", "<s>", "</s>"}
	types = []int32{2, 3, 3}
	// Every printable ASCII character is a token of its own (a space is
	// SentencePiece's ▁), and there are no byte tokens: whatever the
	// random weights pick decodes to printable UTF-8 — engines refuse an
	// answer that is not valid UTF-8 (llama-server with a 500).
	for c := byte(0x21); c < 0x7f; c++ {
		tokens = append(tokens, string(c))
		types = append(types, 1)
	}
	for _, p := range []string{"▁", "▁H", "▁a", "▁d", "al", "lo", "Ha", "ll", "Hal", "Hallo", "▁Hallo", "▁die", "▁der", "▁und"} {
		tokens = append(tokens, p)
		types = append(types, 1)
	}
	scores = make([]float32, len(tokens))
	for i := range scores {
		scores[i] = -float32(i)
	}
	return tokens, scores, types
}

// TinyLlama writes a tiny but complete Llama GGUF (F32, random weights):
// real engines load it and produce tokens (gibberish) and embeddings. It
// returns the tensors written, for tests that check parameter counts.
func TinyLlama(path string, t Tiny) ([]WriteTensor, error) {
	t.fill()
	tokens, scores, types := TinyVocab()
	nv := uint64(len(tokens))
	ts := t.tensors(nv)
	fileType := uint32(0)
	if t.Type != F32 {
		for i := range ts {
			if len(ts[i].Dims) == 2 {
				ts[i].Type = t.Type
			}
		}
		fileType = map[GGMLType]uint32{F16: 1, Q8_0: 7}[t.Type]
	}
	kvs := []KV{
		{"general.architecture", "llama"},
		{"general.name", "gantry-tiny"},
		{"general.file_type", fileType},
		{"llama.context_length", uint32(t.Context)},
		{"llama.embedding_length", uint32(t.Embd)},
		{"llama.block_count", uint32(t.Blocks)},
		{"llama.feed_forward_length", uint32(t.FF)},
		{"llama.attention.head_count", uint32(t.Heads)},
		{"llama.attention.head_count_kv", uint32(t.Heads)},
		{"llama.rope.dimension_count", uint32(t.Embd / t.Heads)},
		{"llama.rope.freq_base", float32(10000)},
		{"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"llama.vocab_size", uint32(nv)},
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.unknown_token_id", uint32(0)},
		{"tokenizer.ggml.bos_token_id", uint32(1)},
		{"tokenizer.ggml.eos_token_id", uint32(2)},
		{"tokenizer.ggml.add_bos_token", true},
		{"tokenizer.ggml.add_eos_token", false},
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := Write(f, kvs, ts); err != nil {
		f.Close()
		return nil, err
	}
	return ts, f.Close()
}

// fill sets the shape's defaults: 2 blocks of 64, 4 heads, 128 in the
// feed-forward, a 512-token context.
func (t *Tiny) fill() {
	if t.Blocks == 0 {
		t.Blocks = 2
	}
	if t.Embd == 0 {
		t.Embd = 64
	}
	if t.Heads == 0 {
		t.Heads = 4
	}
	if t.FF == 0 {
		t.FF = 128
	}
	if t.Context == 0 {
		t.Context = 512
	}
}

// tensors are the model's weights for a vocabulary of nv tokens: random,
// seeded by t.Seed, the norms ones.
func (t Tiny) tensors(nv uint64) []WriteTensor {
	ne, nf := uint64(t.Embd), uint64(t.FF)
	rng := rand.New(rand.NewPCG(t.Seed, 42))
	rnd := func(n uint64, scale float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(rng.NormFloat64() * scale)
		}
		return out
	}
	ones := func(n uint64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = 1
		}
		return out
	}
	scale := 1 / math.Sqrt(float64(ne))
	// The special tokens' output rows are zero: their logit is 0, below
	// the best of ~100 random ones, so greedy decoding never ends an
	// answer before it begins or emits an unknown token.
	output := rnd(ne*nv, scale*4)
	for tok := uint64(0); tok < 3; tok++ {
		clear(output[tok*ne : (tok+1)*ne])
	}
	ts := []WriteTensor{
		{"token_embd.weight", []uint64{ne, nv}, rnd(ne*nv, 0.5), F32},
		{"output_norm.weight", []uint64{ne}, ones(ne), F32},
		{"output.weight", []uint64{ne, nv}, output, F32},
	}
	for b := 0; b < t.Blocks; b++ {
		p := fmt.Sprintf("blk.%d.", b)
		ts = append(ts,
			WriteTensor{p + "attn_norm.weight", []uint64{ne}, ones(ne), F32},
			WriteTensor{p + "attn_q.weight", []uint64{ne, ne}, rnd(ne*ne, scale), F32},
			WriteTensor{p + "attn_k.weight", []uint64{ne, ne}, rnd(ne*ne, scale), F32},
			WriteTensor{p + "attn_v.weight", []uint64{ne, ne}, rnd(ne*ne, scale), F32},
			WriteTensor{p + "attn_output.weight", []uint64{ne, ne}, rnd(ne*ne, scale), F32},
			WriteTensor{p + "ffn_norm.weight", []uint64{ne}, ones(ne), F32},
			WriteTensor{p + "ffn_gate.weight", []uint64{ne, nf}, rnd(ne*nf, scale), F32},
			WriteTensor{p + "ffn_up.weight", []uint64{ne, nf}, rnd(ne*nf, scale), F32},
			WriteTensor{p + "ffn_down.weight", []uint64{nf, ne}, rnd(nf*ne, 1/math.Sqrt(float64(nf))), F32},
		)
	}
	return ts
}

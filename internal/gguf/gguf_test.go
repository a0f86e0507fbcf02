package gguf

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTinyLlamaRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	written, err := TinyLlama(path, Tiny{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.String("general.architecture") != "llama" || len(f.Tensors) != len(written) {
		t.Fatalf("version %d arch %q tensors %d", f.Version, f.String("general.architecture"), len(f.Tensors))
	}
	var params, bytesSum uint64
	for i, ti := range f.Tensors {
		if ti.Name != written[i].Name || ti.Elements() != uint64(len(written[i].Data)) {
			t.Errorf("tensor %d: %s %d", i, ti.Name, ti.Elements())
		}
		n, ok := ti.Bytes()
		if !ok {
			t.Fatalf("unknown type %v", ti.Type)
		}
		params += ti.Elements()
		bytesSum += n
	}
	if bytesSum != params*4 {
		t.Errorf("F32 bytes %d for %d params", bytesSum, params)
	}
	st, _ := os.Stat(path)
	if st.Size() < int64(bytesSum) || st.Size() > 2<<20 {
		t.Errorf("file size %d", st.Size())
	}
	toks, _ := f.KV["tokenizer.ggml.tokens"].([]any)
	if len(toks) < 100 || toks[3] != "!" {
		t.Errorf("vocab %d %v", len(toks), toks[3])
	}
	for _, tok := range toks {
		if s := tok.(string); strings.HasPrefix(s, "<0x") {
			t.Errorf("a byte token %s: an answer could be cut UTF-8", s)
		}
	}
	if n, ok := f.Uint("llama.block_count"); !ok || n != 2 {
		t.Errorf("block_count %d", n)
	}
}

func header(nt, nkv uint64) []byte {
	var b bytes.Buffer
	b.WriteString(Magic)
	binary.Write(&b, binary.LittleEndian, uint32(3))
	binary.Write(&b, binary.LittleEndian, nt)
	binary.Write(&b, binary.LittleEndian, nkv)
	return b.Bytes()
}

func TestHostileHeaders(t *testing.T) {
	big := header(1<<40, 0)
	longStr := append(header(0, 1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}...)
	cases := map[string][]byte{
		"2^40 tensors":  big,
		"huge string":   longStr,
		"truncated":     header(3, 0),
		"bad magic":     []byte("GGUX\x03\x00\x00\x00"),
		"empty":         nil,
		"old version 1": append([]byte(Magic), 1, 0, 0, 0),
	}
	for name, b := range cases {
		if _, err := Parse(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "2^40 tensors" && !strings.Contains(err.Error(), "tensors") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	path := filepath.Join(f.TempDir(), "tiny.gguf")
	if _, err := TinyLlama(path, Tiny{Blocks: 1, Embd: 8, Heads: 2, FF: 8}); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	f.Add(b[:min(len(b), 4096)])
	f.Add(header(1, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(bytes.NewReader(b)) // must not panic, hang or allocate without bound
	})
}

func TestF16(t *testing.T) {
	for _, c := range []struct {
		v    float32
		want uint16
	}{{0, 0}, {1, 0x3c00}, {0.5, 0x3800}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00},
		{1e-8, 0}, {5.9604645e-8, 0x0001}, {6.1035156e-5, 0x0400}, {0.1, 0x2e66}} {
		if got := f16(c.v); got != c.want {
			t.Errorf("f16(%g) = %#04x, want %#04x", c.v, got, c.want)
		}
	}
}

// TestQuantizedTiny writes the tiny model as F16 and Q8_0 and reads back
// the types, the file type and the sizes ggml's block layout gives.
func TestQuantizedTiny(t *testing.T) {
	for _, typ := range []GGMLType{F16, Q8_0} {
		p := filepath.Join(t.TempDir(), "tiny.gguf")
		ts, err := TinyLlama(p, Tiny{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		f, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if ft, _ := f.Uint("general.file_type"); FileTypeName(ft) != typ.String() {
			t.Errorf("%v: file type %d (%s)", typ, ft, FileTypeName(ft))
		}
		st, _ := os.Stat(p)
		var data uint64
		for i, ti := range f.Tensors {
			want := typ
			if len(ts[i].Dims) == 1 {
				want = F32
			}
			if ti.Type != want {
				t.Errorf("%v: %s stored as %v, want %v", typ, ti.Name, ti.Type, want)
			}
			n, _ := ti.Bytes()
			data = max(data, ti.Offset+n)
		}
		if got := uint64(st.Size()) - uint64(f.DataOffset); got < data || got > data+32 {
			t.Errorf("%v: data section %d bytes, tensors need %d", typ, got, data)
		}
	}
}

package gguf

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"reflect"
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
		ParseAt(bytes.NewReader(b))
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

// watched is an io.ReaderAt that records the furthest byte asked for.
type watched struct {
	b     []byte
	reads int
	end   int64
}

func (w *watched) ReadAt(p []byte, off int64) (int, error) {
	w.reads++
	w.end = max(w.end, off+int64(len(p)))
	if off >= int64(len(w.b)) {
		return 0, io.EOF
	}
	n := copy(p, w.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestParseAtReadsNoTensorData: through ReaderAt, the header is read
// whole (the same as a stream parse) and not one byte of tensor data is
// asked for, in a handful of reads.
func TestParseAtReadsNoTensorData(t *testing.T) {
	for _, tiny := range []Tiny{{}, {Blocks: 6, Type: Q8_0}, {Blocks: 1, Embd: 32, Heads: 2, FF: 32}} {
		p := filepath.Join(t.TempDir(), "m.gguf")
		if _, err := TinyLlama(p, tiny); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		want, err := Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		w := &watched{b: b}
		got, err := ParseAt(w)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%+v: ParseAt and Parse differ", tiny)
		}
		// The header ends where the last tensor info does, before the
		// alignment padding.
		if w.end > want.DataOffset {
			t.Errorf("%+v: read up to byte %d, tensor data starts at %d", tiny, w.end, want.DataOffset)
		}
		if w.reads > 40 {
			t.Errorf("%+v: %d reads for a %d-byte header", tiny, w.reads, want.DataOffset)
		}
		t.Logf("%+v: %d reads for a %d-byte header", tiny, w.reads, want.DataOffset)
	}
}

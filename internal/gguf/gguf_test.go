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

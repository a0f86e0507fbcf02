// Package gguf reads and writes the header of GGUF files (llama.cpp's and
// Ollama's model format): key-value metadata and tensor infos. Reading never
// touches the tensor data and refuses counts and lengths that are absurd,
// so an untrusted file cannot make it allocate without bound.
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Magic is the first four bytes of a GGUF file.
const Magic = "GGUF"

// Limits on what a header may claim.
const (
	maxTensors = 1 << 20
	maxKVs     = 1 << 16
	maxString  = 16 << 20
	maxArray   = 1 << 24
	maxDims    = 8
)

// Value types of metadata.
const (
	TypeUint8   uint32 = 0
	TypeInt8    uint32 = 1
	TypeUint16  uint32 = 2
	TypeInt16   uint32 = 3
	TypeUint32  uint32 = 4
	TypeInt32   uint32 = 5
	TypeFloat32 uint32 = 6
	TypeBool    uint32 = 7
	TypeString  uint32 = 8
	TypeArray   uint32 = 9
	TypeUint64  uint32 = 10
	TypeInt64   uint32 = 11
	TypeFloat64 uint32 = 12
)

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   GGMLType
	Offset uint64
}

// Elements is the number of values in the tensor.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data, from its type's block layout;
// ok is false for a type this package does not know.
func (t TensorInfo) Bytes() (uint64, bool) {
	bl, ok := blockLayouts[t.Type]
	if !ok {
		return 0, false
	}
	n := t.Elements()
	return (n + bl.size - 1) / bl.size * bl.bytes, true
}

// File is a GGUF header.
type File struct {
	Version uint32
	KV      map[string]any // uint*/int* as their Go types, string, bool, float*, []any
	Keys    []string       // in file order
	Tensors []TensorInfo
	// DataOffset is where tensor data starts (after alignment).
	DataOffset int64
}

// Read parses the header of the GGUF file at path.
func Read(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// source is where a header is read from. ahead(n) says the next n bytes
// are certainly header: a source over HTTP ranges fetches them in one go,
// and never asks for a byte it is not sure of, so no tensor data is read.
type source interface {
	io.Reader
	ahead(n int64)
}

// stream reads a header from an io.Reader, buffered; hints do not matter.
type stream struct{ *bufio.Reader }

func (stream) ahead(int64) {}

// ranges reads a header through an io.ReaderAt, one ReadAt per fill, each
// as large as the header is certain to be from there (at most maxFetch).
type ranges struct {
	r    io.ReaderAt
	off  int64 // file offset of buf[0]
	buf  []byte
	pos  int
	sure int64 // file offset up to which the bytes are header
}

// maxFetch bounds one read, and so the memory a read may hold.
const maxFetch = 16 << 20

func (s *ranges) ahead(n int64) { s.sure = max(s.sure, s.off+int64(s.pos)+n) }

func (s *ranges) Read(p []byte) (int, error) {
	if s.pos == len(s.buf) {
		at := s.off + int64(len(s.buf))
		want := min(max(int64(len(p)), s.sure-at), maxFetch)
		if cap(s.buf) < int(want) {
			s.buf = make([]byte, want)
		}
		n, err := s.r.ReadAt(s.buf[:want], at)
		s.off, s.buf, s.pos = at, s.buf[:n], 0
		if n == 0 {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	n := copy(p, s.buf[s.pos:])
	s.pos += n
	return n, nil
}

// counter counts the bytes read, to find the data offset.
type counter struct {
	r source
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Parse reads a GGUF header from r.
func Parse(r io.Reader) (*File, error) {
	return parse(stream{bufio.NewReaderSize(r, 64<<10)})
}

// ParseAt reads a GGUF header through r (a file, or a file's HTTP ranges)
// without reading a byte past the header: each read asks for what the
// header's own counts say must still follow (a key costs at least 13
// bytes, a tensor's info 24, a string its length, an array its count
// times its element's least size), so a remote file gives its metadata in
// a few dozen requests and none of its weights.
func ParseAt(r io.ReaderAt) (*File, error) {
	return parse(&ranges{r: r})
}

func parse(src source) (*File, error) {
	c := &counter{r: src}
	src.ahead(24)
	var magic [4]byte
	if _, err := io.ReadFull(c, magic[:]); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if string(magic[:]) != Magic {
		return nil, errors.New("gguf: not a GGUF file (bad magic)")
	}
	f := &File{KV: map[string]any{}}
	rd := reader{r: c, src: src}
	f.Version = rd.u32()
	if rd.err == nil && (f.Version < 2 || f.Version > 3) {
		return nil, fmt.Errorf("gguf: version %d is not supported (2 or 3)", f.Version)
	}
	nt, nkv := rd.u64(), rd.u64()
	if rd.err != nil {
		return nil, fmt.Errorf("gguf: header: %w", rd.err)
	}
	if nt > maxTensors {
		return nil, fmt.Errorf("gguf: claims %d tensors (more than %d): corrupt or hostile", nt, maxTensors)
	}
	if nkv > maxKVs {
		return nil, fmt.Errorf("gguf: claims %d metadata keys (more than %d)", nkv, maxKVs)
	}
	// The least each key and each tensor's info still take.
	const kvMin, tensorMin = 8 + 4 + 1, 8 + 4 + 4 + 8
	src.ahead(int64(nkv*kvMin + nt*tensorMin))
	for i := uint64(0); i < nkv && rd.err == nil; i++ {
		rest := int64((nkv-i-1)*kvMin + nt*tensorMin)
		rd.after = 4 + 1 + rest
		k := rd.str()
		t := rd.u32()
		rd.after = rest
		v := rd.value(t, 0)
		if rd.err == nil {
			f.KV[k] = v
			f.Keys = append(f.Keys, k)
		}
	}
	for i := uint64(0); i < nt && rd.err == nil; i++ {
		rest := int64((nt - i - 1) * tensorMin)
		rd.after = 4 + 4 + 8 + rest
		ti := TensorInfo{Name: rd.str()}
		nd := rd.u32()
		if nd > maxDims {
			return nil, fmt.Errorf("gguf: tensor %q has %d dimensions", ti.Name, nd)
		}
		src.ahead(int64(nd)*8 + 4 + 8 + rest)
		for d := uint32(0); d < nd; d++ {
			ti.Dims = append(ti.Dims, rd.u64())
		}
		ti.Type = GGMLType(rd.u32())
		ti.Offset = rd.u64()
		f.Tensors = append(f.Tensors, ti)
	}
	if rd.err != nil {
		return nil, fmt.Errorf("gguf: %w", rd.err)
	}
	align := int64(32)
	if a, ok := f.KV["general.alignment"].(uint32); ok && a > 0 && a <= 1<<16 {
		align = int64(a)
	}
	f.DataOffset = (c.n + align - 1) / align * align
	return f, nil
}

type reader struct {
	r   io.Reader
	src source
	// after is the least number of header bytes that follow the value
	// being read.
	after int64
	err   error
	buf   [8]byte
}

func (r *reader) read(n int) []byte {
	if r.err != nil {
		return r.buf[:n]
	}
	if _, err := io.ReadFull(r.r, r.buf[:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		r.err = fmt.Errorf("truncated header: %w", err)
	}
	return r.buf[:n]
}

func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.read(4)) }
func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.read(8)) }

func (r *reader) str() string {
	n := r.u64()
	if r.err != nil {
		return ""
	}
	if n > maxString {
		r.err = fmt.Errorf("a string of %d bytes (limit %d)", n, maxString)
		return ""
	}
	r.src.ahead(int64(n) + r.after)
	// Grow with the data actually there: a claimed length costs nothing
	// until the bytes arrive.
	var b strings.Builder
	if got, err := io.CopyN(&b, r.r, int64(n)); err != nil || got != int64(n) {
		r.err = fmt.Errorf("truncated string (%d of %d bytes)", got, n)
		return ""
	}
	return b.String()
}

func (r *reader) value(t uint32, depth int) any {
	switch t {
	case TypeUint8:
		return r.read(1)[0]
	case TypeInt8:
		return int8(r.read(1)[0])
	case TypeUint16:
		return binary.LittleEndian.Uint16(r.read(2))
	case TypeInt16:
		return int16(binary.LittleEndian.Uint16(r.read(2)))
	case TypeUint32:
		return r.u32()
	case TypeInt32:
		return int32(r.u32())
	case TypeFloat32:
		return math.Float32frombits(r.u32())
	case TypeBool:
		return r.read(1)[0] != 0
	case TypeString:
		return r.str()
	case TypeUint64:
		return r.u64()
	case TypeInt64:
		return int64(r.u64())
	case TypeFloat64:
		return math.Float64frombits(r.u64())
	case TypeArray:
		if depth > 2 {
			r.err = errors.New("arrays nested too deeply")
			return nil
		}
		et := r.u32()
		n := r.u64()
		if r.err != nil {
			return nil
		}
		if n > maxArray {
			r.err = fmt.Errorf("an array of %d items (limit %d)", n, maxArray)
			return nil
		}
		after, least := r.after, minSize(et)
		r.src.ahead(int64(n)*least + after)
		out := make([]any, 0, min(n, 4096))
		for i := uint64(0); i < n && r.err == nil; i++ {
			r.after = int64(n-i-1)*least + after
			out = append(out, r.value(et, depth+1))
		}
		r.after = after
		return out
	}
	r.err = fmt.Errorf("unknown metadata value type %d", t)
	return nil
}

// minSize is the least bytes a value of type t takes.
func minSize(t uint32) int64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeArray:
		return 4 + 8
	}
	return 8 // 64-bit numbers; a string's length
}

// String returns a string metadata value ("" when absent).
func (f *File) String(key string) string {
	s, _ := f.KV[key].(string)
	return s
}

// Uint returns an integer metadata value of any integer type.
func (f *File) Uint(key string) (uint64, bool) {
	switch v := f.KV[key].(type) {
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	case uint32:
		return uint64(v), true
	case uint64:
		return v, true
	case int8:
		return uint64(v), v >= 0
	case int16:
		return uint64(v), v >= 0
	case int32:
		return uint64(v), v >= 0
	case int64:
		return uint64(v), v >= 0
	}
	return 0, false
}

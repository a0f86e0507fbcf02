package inventory

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// maxHeader bounds a safetensors JSON header; real ones are a few MB at most.
const maxHeader = 100 << 20

// Tensor is one tensor's entry in a weights file header.
type Tensor struct {
	Name  string
	DType string
	Shape []int64
	Bytes int64
}

// Elements is the number of values in the tensor.
func (t Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// SafetensorsHeader is what a .safetensors file says about itself.
type SafetensorsHeader struct {
	Tensors  []Tensor
	Metadata map[string]string
	// DataBytes is the size of the data section the tensors cover.
	DataBytes int64
}

// ReadSafetensors reads the header of a .safetensors file: an 8-byte
// little-endian length, then that many bytes of JSON. It reads nothing of
// the weights and refuses headers that are absurd or do not fit the file.
func ReadSafetensors(path string) (*SafetensorsHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return parseSafetensors(f, st.Size())
}

func parseSafetensors(r io.Reader, fileSize int64) (*SafetensorsHeader, error) {
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors: file too short for a header: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n < 2 || n > maxHeader {
		return nil, fmt.Errorf("safetensors: header length %d is out of range (2 to %d)", n, maxHeader)
	}
	if fileSize >= 0 && int64(n) > fileSize-8 {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the file (%d bytes): truncated?", n, fileSize)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("safetensors: truncated header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf, &raw); err != nil {
		return nil, fmt.Errorf("safetensors: header is not JSON: %w", err)
	}
	h := &SafetensorsHeader{}
	for name, v := range raw {
		if name == "__metadata__" {
			json.Unmarshal(v, &h.Metadata) //nolint:errcheck // metadata is optional and free-form
			continue
		}
		var t struct {
			DType   string  `json:"dtype"`
			Shape   []int64 `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(v, &t); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		if len(t.Offsets) != 2 || t.Offsets[0] < 0 || t.Offsets[1] < t.Offsets[0] {
			return nil, fmt.Errorf("safetensors: tensor %q has bad data_offsets %v", name, t.Offsets)
		}
		for _, d := range t.Shape {
			if d < 0 || d > math.MaxInt32*int64(1024) {
				return nil, fmt.Errorf("safetensors: tensor %q has a bad shape %v", name, t.Shape)
			}
		}
		size := t.Offsets[1] - t.Offsets[0]
		h.Tensors = append(h.Tensors, Tensor{Name: name, DType: t.DType, Shape: t.Shape, Bytes: size})
		h.DataBytes = max(h.DataBytes, t.Offsets[1])
	}
	if fileSize >= 0 && 8+int64(n)+h.DataBytes > fileSize {
		return nil, fmt.Errorf("safetensors: tensors need %d bytes of data but the file has %d: truncated?", h.DataBytes, fileSize-8-int64(n))
	}
	sort.Slice(h.Tensors, func(i, j int) bool { return h.Tensors[i].Name < h.Tensors[j].Name })
	return h, nil
}

// safetensorsIndex is model.safetensors.index.json.
type safetensorsIndex struct {
	Metadata struct {
		TotalSize int64 `json:"total_size"`
	} `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// shardFiles returns the shard file names an index lists, sorted.
func (ix *safetensorsIndex) shardFiles() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, f := range ix.WeightMap {
		if strings.Contains(f, "/") || strings.Contains(f, `\`) || f == ".." {
			return nil, fmt.Errorf("index names a shard outside the folder: %q", f)
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("index lists no shards")
	}
	sort.Strings(out)
	return out, nil
}

// dtypeBytes is the size of one element of a safetensors dtype.
func dtypeBytes(dt string) int {
	switch strings.ToUpper(dt) {
	case "F64", "I64", "U64":
		return 8
	case "F32", "I32", "U32":
		return 4
	case "F16", "BF16", "I16", "U16":
		return 2
	case "F8_E4M3", "F8_E5M2", "F8_E8M0", "I8", "U8", "BOOL":
		return 1
	}
	return 0
}

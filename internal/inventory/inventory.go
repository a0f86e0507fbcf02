// Package inventory knows the model files on disk: it reads config.json,
// hf_quant_config.json and the headers of safetensors and GGUF files (never
// the weights) and says what a model is, how it is quantized, how many bytes
// its weights take and how much KV cache a token costs.
package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gantryhq/gantry/internal/gguf"
)

// Model is what gantry knows about one model on disk. Fields that could
// not be read are zero; Problems says why.
type Model struct {
	Name         string `json:"name"`
	Path         string `json:"path"`
	Format       string `json:"format"` // safetensors | gguf | "" (config only)
	Architecture string `json:"architecture"`
	ModelType    string `json:"model_type"`
	Kind         string `json:"kind"` // generation | embedding | rerank
	DType        string `json:"dtype"`
	Params       int64  `json:"params"`
	WeightBytes  int64  `json:"weight_bytes"`
	KV
	MaxContext int64    `json:"max_context"`
	Quant      Quant    `json:"quantization"`
	DiskBytes  int64    `json:"disk_bytes"`
	Files      int      `json:"files"`
	Tensors    int      `json:"tensors"`
	Problems   []string `json:"problems,omitempty"`
}

// Inspect reads the model at path: a folder with config.json and/or
// *.safetensors, or a .gguf file.
func Inspect(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	m := &Model{Path: path, Name: filepath.Base(path)}
	if !st.IsDir() {
		if !strings.HasSuffix(strings.ToLower(path), ".gguf") {
			return nil, fmt.Errorf("%s: not a model folder or .gguf file", path)
		}
		m.Name = strings.TrimSuffix(m.Name, filepath.Ext(m.Name))
		return m, m.readGGUF(path, st.Size())
	}
	return m, m.readFolder(path)
}

func (m *Model) problem(format string, args ...any) {
	m.Problems = append(m.Problems, fmt.Sprintf(format, args...))
}

func (m *Model) readFolder(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var shards []string
	hasConfig, hasIndex, hasQuant := false, false, false
	for _, e := range ents {
		n := e.Name()
		switch {
		case n == "config.json":
			hasConfig = true
		case n == "model.safetensors.index.json":
			hasIndex = true
		case n == "hf_quant_config.json":
			hasQuant = true
		case strings.HasSuffix(n, ".safetensors"):
			shards = append(shards, n)
		}
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			m.DiskBytes += info.Size()
			m.Files++
		}
	}
	if !hasConfig && len(shards) == 0 && !hasQuant {
		return fmt.Errorf("%s: no config.json or *.safetensors", dir)
	}
	if hasConfig {
		m.readConfig(filepath.Join(dir, "config.json"))
	}
	if hasQuant {
		var hq hfQuantConfig
		if err := readJSON(filepath.Join(dir, "hf_quant_config.json"), &hq); err != nil {
			m.problem("hf_quant_config.json: %v", err)
		} else if hq.Quantization.QuantAlgo != "" {
			q := hq.quant()
			if m.Quant.Format != "" && q.Format == "" {
				q.Format = m.Quant.Format
			}
			m.Quant = q
		}
	}
	if hasIndex {
		var ix safetensorsIndex
		if err := readJSON(filepath.Join(dir, "model.safetensors.index.json"), &ix); err != nil {
			m.problem("model.safetensors.index.json: %v", err)
		} else if files, err := ix.shardFiles(); err != nil {
			m.problem("model.safetensors.index.json: %v", err)
		} else {
			shards = files
		}
	}
	if len(shards) > 0 {
		m.Format = "safetensors"
	}
	dtypes := map[string]int64{}
	for _, s := range shards {
		h, err := ReadSafetensors(filepath.Join(dir, s))
		if err != nil {
			m.problem("%s: %v", s, err)
			continue
		}
		for _, t := range h.Tensors {
			m.WeightBytes += t.Bytes
			m.Params += t.Elements()
			dtypes[t.DType] += t.Bytes
			m.Tensors++
		}
	}
	if m.DType == "" && len(dtypes) > 0 {
		m.DType = strings.ToLower(mostBytes(dtypes))
	}
	return nil
}

func mostBytes(m map[string]int64) string {
	best, bn := "", int64(-1)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if m[k] > bn {
			best, bn = k, m[k]
		}
	}
	return best
}

// maxConfig bounds config.json; real ones are kilobytes.
const maxConfig = 16 << 20

func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > maxConfig {
		return fmt.Errorf("%d bytes is too large for a config file", st.Size())
	}
	return json.NewDecoder(f).Decode(v)
}

func (m *Model) readConfig(path string) {
	var c hfConfig
	if err := readJSON(path, &c); err != nil {
		m.problem("config.json: %v", err)
		return
	}
	t := c.text()
	if len(t.Architectures) > 0 {
		m.Architecture = t.Architectures[0]
	}
	m.ModelType = t.ModelType
	m.Kind = kindOf(t)
	m.DType = t.TorchDType
	if m.DType == "" {
		m.DType = t.DType
	}
	m.MaxContext = t.MaxPositionEmbeddings
	m.Quant = quantOf(t.Quantization)
	kv, err := kvOf(t)
	if err != nil {
		if m.Kind == "generation" {
			m.problem("KV cache: %v", err)
		}
	} else {
		m.KV = kv
	}
}

func (m *Model) readGGUF(path string, size int64) error {
	m.Format = "gguf"
	m.DiskBytes, m.Files = size, 1
	f, err := gguf.Read(path)
	if err != nil {
		return err
	}
	arch := f.String("general.architecture")
	m.Architecture, m.ModelType = arch, arch
	m.Kind = "generation"
	if _, ok := f.KV[arch+".pooling_type"]; ok || arch == "bert" || arch == "nomic-bert" {
		m.Kind = "embedding"
	}
	types := map[string]int64{}
	for _, t := range f.Tensors {
		n, ok := t.Bytes()
		if !ok {
			m.problem("tensor %s has a type gantry does not know (%v)", t.Name, t.Type)
			continue
		}
		m.Params += int64(t.Elements())
		m.WeightBytes += int64(n)
		types[t.Type.String()] += int64(n)
		m.Tensors++
	}
	if m.WeightBytes > size {
		m.problem("tensors need %d bytes but the file has %d: truncated?", m.WeightBytes, size)
	}
	ftName := ""
	if ft, ok := f.Uint("general.file_type"); ok {
		ftName = gguf.FileTypeName(ft)
	} else {
		ftName = mostBytes(types)
	}
	m.DType = strings.ToLower(mostBytes(types))
	m.Quant = Quant{Method: "gguf", Algo: ftName, Bits: gguf.FileTypeBits(ftName), Format: "GGUF v" + fmt.Sprint(f.Version)}
	if ctx, ok := f.Uint(arch + ".context_length"); ok {
		m.MaxContext = int64(ctx)
	}
	layers, _ := f.Uint(arch + ".block_count")
	heads, _ := f.Uint(arch + ".attention.head_count")
	kvHeads, ok := f.Uint(arch + ".attention.head_count_kv")
	if !ok {
		kvHeads = heads
	}
	embd, _ := f.Uint(arch + ".embedding_length")
	hd, ok := f.Uint(arch + ".attention.key_length")
	if !ok && heads > 0 {
		hd = embd / heads
	}
	if layers > 0 && kvHeads > 0 && hd > 0 {
		// llama.cpp and Ollama keep the KV cache in F16 by default.
		m.KV = KV{BytesPerToken: int64(2 * layers * kvHeads * hd * 2)}
		if w, ok := f.Uint(arch + ".attention.sliding_window"); ok && w > 0 {
			m.KV.Window = int64(w)
		}
	}
	return nil
}

// Scan finds the models under root: every folder with config.json or
// *.safetensors (not descended into further) and every .gguf file. A model
// that cannot be read is listed with its problem; the scan goes on.
// Symlinks are followed once; loops and gantry's own Ollama store are
// skipped.
func Scan(root string) ([]*Model, error) {
	if _, err := os.Stat(root); err != nil {
		return nil, err
	}
	var out []*Model
	seen := map[string]bool{}
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil || seen[real] || depth > 8 {
			return
		}
		seen[real] = true
		ents, err := os.ReadDir(dir)
		if err != nil {
			out = append(out, &Model{Name: filepath.Base(dir), Path: dir, Problems: []string{err.Error()}})
			return
		}
		isModel := false
		for _, e := range ents {
			n := e.Name()
			if n == "config.json" || strings.HasSuffix(n, ".safetensors") || n == "hf_quant_config.json" {
				isModel = true
				break
			}
		}
		if isModel && depth > 0 {
			m, err := Inspect(dir)
			if m == nil {
				m = &Model{Name: filepath.Base(dir), Path: dir}
			}
			if err != nil {
				m.problem("%v", err)
			}
			out = append(out, m)
			return
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if strings.HasPrefix(e.Name(), ".") || depth == 0 && e.Name() == "ollama" {
				continue
			}
			info, err := os.Stat(p) // follows symlinks
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrPermission) || isLoop(err) {
					continue
				}
				continue
			}
			switch {
			case info.IsDir():
				walk(p, depth+1)
			case strings.HasSuffix(strings.ToLower(e.Name()), ".gguf"):
				m, err := Inspect(p)
				if m == nil {
					m = &Model{Name: e.Name(), Path: p}
				}
				if err != nil {
					m.problem("%v", err)
				}
				out = append(out, m)
			}
		}
	}
	walk(root, 0)
	for _, m := range out {
		if rel, err := filepath.Rel(root, m.Path); err == nil {
			m.Name = rel
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func isLoop(err error) bool {
	return strings.Contains(err.Error(), "too many levels of symbolic links")
}

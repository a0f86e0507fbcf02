// Package inventory knows a model's files — on disk, or a repository read
// through HTTP ranges, by the same code (Files): it reads config.json,
// hf_quant_config.json, the chat template and the headers of safetensors
// and GGUF files (never the weights) and says what a model is, how it is
// quantized, how many bytes its weights take and how much KV cache a
// token costs.
package inventory

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gguf"
)

// Model is what gantry knows about one model, on disk or read over the
// network. Fields that could not be read are zero; Problems says why.
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
	MaxContext int64 `json:"max_context"`
	Quant      Quant `json:"quantization"`
	// ChatTemplate says the model carries a chat template (in
	// tokenizer_config.json, chat_template.jinja or GGUF metadata).
	ChatTemplate bool     `json:"chat_template"`
	DiskBytes    int64    `json:"disk_bytes"`
	Files        int      `json:"files"`
	Tensors      int      `json:"tensors"`
	Problems     []string `json:"problems,omitempty"`
}

// Inspect reads the model at path: a folder with config.json and/or
// *.safetensors, or a .gguf file.
func Inspect(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		if !strings.HasSuffix(strings.ToLower(path), ".gguf") {
			return nil, fmt.Errorf("%s: not a model folder or .gguf file", path)
		}
		m, err := InspectGGUF(Dir(filepath.Dir(path)), []string{filepath.Base(path)})
		if m != nil {
			m.Path = path
		}
		return m, err
	}
	return InspectFiles(Dir(path))
}

func (m *Model) problem(format string, args ...any) {
	m.Problems = append(m.Problems, fmt.Sprintf(format, args...))
}

// InspectFiles reads a model folder's files: config.json, the
// quantization configs, the chat template and every safetensors shard's
// header (the index's shards when there is one).
func InspectFiles(fs Files) (*Model, error) {
	m := &Model{Path: fs.Where(), Name: path.Base(fs.Where())}
	ix, names, err := listIndex(fs)
	if err != nil {
		return nil, err
	}
	var shards []string
	for _, n := range names {
		if !strings.Contains(n, "/") {
			m.DiskBytes += ix[n]
			m.Files++
		}
		if strings.HasSuffix(n, ".safetensors") && !strings.Contains(n, "/") {
			shards = append(shards, n)
		}
	}
	_, hasConfig := ix["config.json"]
	_, hasQuant := ix["hf_quant_config.json"]
	if !hasConfig && len(shards) == 0 && !hasQuant {
		return nil, fmt.Errorf("%s: no config.json or *.safetensors", fs.Where())
	}
	if hasConfig {
		m.readConfig(fs, ix)
	}
	if hasQuant {
		m.readQuantConfig(fs, ix)
	}
	if _, ok := ix["model.safetensors.index.json"]; ok {
		var sx safetensorsIndex
		if err := readJSON(fs, ix, "model.safetensors.index.json", &sx); err != nil {
			m.problem("model.safetensors.index.json: %v", err)
		} else if files, err := sx.shardFiles(); err != nil {
			m.problem("model.safetensors.index.json: %v", err)
		} else {
			shards = files
		}
	}
	m.ChatTemplate = hasChatTemplate(fs, ix)
	if len(shards) > 0 {
		m.Format = "safetensors"
	}
	m.readShards(fs, ix, shards)
	return m, nil
}

func (m *Model) readQuantConfig(fs Files, ix index) {
	var hq hfQuantConfig
	if err := readJSON(fs, ix, "hf_quant_config.json", &hq); err != nil {
		m.problem("hf_quant_config.json: %v", err)
	} else if hq.Quantization.QuantAlgo != "" {
		q := hq.quant()
		if m.Quant.Format != "" && q.Format == "" {
			q.Format = m.Quant.Format
		}
		m.Quant = q
	}
}

// readShards reads the shards' headers, several at once (each is one or
// two round trips over the network), and sums their tensors in order.
func (m *Model) readShards(fs Files, ix index, shards []string) {
	heads := make([]*SafetensorsHeader, len(shards))
	errs := make([]error, len(shards))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			size, ok := ix[s]
			if !ok {
				errs[i] = fmt.Errorf("listed in the index but not there: %w", os.ErrNotExist)
				return
			}
			r, err := fs.Open(s)
			if err != nil {
				errs[i] = err
				return
			}
			defer r.Close()
			heads[i], errs[i] = parseSafetensors(io.NewSectionReader(r, 0, size), size)
		}()
	}
	wg.Wait()
	dtypes := map[string]int64{}
	for i, h := range heads {
		if errs[i] != nil {
			m.problem("%s: %v", shards[i], errs[i])
			continue
		}
		for _, t := range h.Tensors {
			m.WeightBytes += t.Bytes
			m.Params += paramsOf(t, m.Quant)
			dtypes[t.DType] += t.Bytes
			m.Tensors++
		}
	}
	if m.DType == "" && len(dtypes) > 0 {
		m.DType = strings.ToLower(mostBytes(dtypes))
	}
}

// paramsOf counts a tensor's parameters: FP4 checkpoints pack two values
// in a byte (MXFP4's *_blocks, NVFP4's U8 weights), and their scales are
// no parameters (gpt-oss-20b: 20.9B, as its model card says, not the
// 12B its bytes would give).
func paramsOf(t Tensor, q Quant) int64 {
	if q.Algo != "NVFP4" && q.Algo != "MXFP4" || t.DType != "U8" {
		return t.Elements()
	}
	switch {
	case strings.Contains(t.Name, "scale"):
		return 0
	case strings.HasSuffix(t.Name, "_blocks"), strings.HasSuffix(t.Name, ".weight"), strings.HasSuffix(t.Name, ".weight_packed"):
		return 2 * t.Elements()
	}
	return t.Elements()
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

func (m *Model) readConfig(fs Files, ix index) {
	var c hfConfig
	if err := readJSON(fs, ix, "config.json", &c); err != nil {
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

// InspectGGUF reads a GGUF model: one file, or the shards of a split one
// (name-00001-of-0000N.gguf …, in order), their headers only.
func InspectGGUF(fs Files, names []string) (*Model, error) {
	ix, _, err := listIndex(fs)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no GGUF file named", fs.Where())
	}
	first := names[0]
	m := &Model{Path: fs.Where() + "/" + first, Name: strings.TrimSuffix(path.Base(first), path.Ext(first)), Format: "gguf"}
	var head *gguf.File
	types := map[string]int64{}
	for i, n := range names {
		size, ok := ix[n]
		if !ok {
			return nil, fmt.Errorf("%s: %w", n, os.ErrNotExist)
		}
		m.DiskBytes += size
		m.Files++
		g, err := readGGUFHeader(fs, n)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			head = g
		}
		fileWeights := int64(0)
		for _, t := range g.Tensors {
			b, ok := t.Bytes()
			if !ok {
				m.problem("tensor %s has a type gantry does not know (%v)", t.Name, t.Type)
				continue
			}
			m.Params += int64(t.Elements())
			m.WeightBytes += int64(b)
			fileWeights += int64(b)
			types[t.Type.String()] += int64(b)
			m.Tensors++
		}
		if fileWeights > size {
			m.problem("%s: tensors need %d bytes but the file has %d: truncated?", n, fileWeights, size)
		}
	}
	m.readGGUFMeta(head, types)
	return m, nil
}

func readGGUFHeader(fs Files, name string) (*gguf.File, error) {
	r, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	g, err := gguf.ParseAt(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return g, nil
}

// readGGUFMeta reads what the first file's metadata says of the model.
func (m *Model) readGGUFMeta(f *gguf.File, types map[string]int64) {
	arch := f.String("general.architecture")
	m.Architecture, m.ModelType = arch, arch
	m.Kind = "generation"
	if _, ok := f.KV[arch+".pooling_type"]; ok || arch == "bert" || arch == "nomic-bert" {
		m.Kind = "embedding"
	}
	m.ChatTemplate = f.String("tokenizer.chat_template") != ""
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
			if strings.HasPrefix(e.Name(), ".") || depth == 0 && engine.KeepsStore(e.Name()) {
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

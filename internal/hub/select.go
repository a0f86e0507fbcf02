package hub

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/gantryhq/gantry/internal/lazyre"
)

// Selection is what `gantry get` takes from a repository, and why the rest
// stays behind.
type Selection struct {
	Format  string `json:"format"` // safetensors | gguf | pytorch | ""
	Files   []File `json:"files"`
	Skipped []Skip `json:"skipped,omitempty"`
	// Quant is the GGUF quantization chosen ("" for other formats).
	Quant string `json:"quant,omitempty"`
	// Quants lists a GGUF repository's quantizations with their files.
	Quants []Quant `json:"quants,omitempty"`
}

// Skip is a file left out, with the reason.
type Skip struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
}

// Quant is one quantization of a GGUF repository: its file, or the
// shards of a split file in order.
type Quant struct {
	Name  string   `json:"name"` // Q4_K_M, Q8_0, F16, … as the file name says
	Files []string `json:"files"`
	Size  int64    `json:"size"`
}

// Bytes is the size of the selected files.
func (s *Selection) Bytes() int64 {
	n := int64(0)
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// Rules for what no engine reads: engines load a Hugging Face folder's
// top-level safetensors (or, lacking them, PyTorch .bin files), its
// configs and tokenizer; llama.cpp and Ollama load one GGUF.
var skipRules = []struct {
	match  func(p string, r *repoShape) bool
	reason string
}{
	{func(p string, _ *repoShape) bool {
		return under(p, "original", "metal", "onnx", "openvino", "coreml", "flax_model")
	},
		"a folder of another runtime's checkpoint (Meta's consolidated, Metal, ONNX, OpenVINO, Core ML)"},
	{func(p string, _ *repoShape) bool {
		return hasExt(p, ".pth", ".pt", ".ckpt", ".msgpack", ".h5", ".onnx", ".tflite", ".ot")
	},
		"a PyTorch pickle or another framework's weights, which the engines do not load"},
	{func(p string, r *repoShape) bool {
		return r.safetensors && hasExt(p, ".bin") && !strings.Contains(p, "/")
	},
		"PyTorch .bin weights beside the safetensors ones (the same weights twice)"},
	{func(p string, r *repoShape) bool {
		return r.modelShards && strings.HasPrefix(path.Base(p), "consolidated") && hasExt(p, ".safetensors")
	}, "a consolidated duplicate of the model-*.safetensors shards"},
	{func(p string, _ *repoShape) bool { return p == ".gitattributes" }, "git's own file"},
}

type repoShape struct{ safetensors, modelShards, gguf bool }

func under(p string, dirs ...string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func hasExt(p string, exts ...string) bool {
	l := strings.ToLower(p)
	for _, e := range exts {
		if strings.HasSuffix(l, e) {
			return true
		}
	}
	return false
}

// Options are the user's choices for a selection.
type Options struct {
	Include []string // globs: taken even when a rule would skip them
	Exclude []string // globs: left out
	// Quant names the GGUF quantization ("" chooses: see Choose).
	Quant string
}

// Select picks the files of r to download. In a GGUF repository one
// quantization is taken: o.Quant, or the one choose returns (nil: the
// first by the order of PreferredQuants that exists).
func Select(r *Repo, o Options, choose func([]Quant) (string, error)) (*Selection, error) {
	for _, g := range append(append([]string{}, o.Include...), o.Exclude...) {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %v", g, err)
		}
	}
	shape := &repoShape{}
	for _, f := range r.Files {
		top := !strings.Contains(f.Path, "/")
		shape.safetensors = shape.safetensors || top && hasExt(f.Path, ".safetensors")
		shape.modelShards = shape.modelShards || top && strings.HasPrefix(f.Path, "model") && hasExt(f.Path, ".safetensors")
		shape.gguf = shape.gguf || hasExt(f.Path, ".gguf")
	}
	s := &Selection{}
	switch {
	case shape.safetensors:
		s.Format = "safetensors"
	case shape.gguf:
		s.Format = "gguf"
	default:
		for _, f := range r.Files {
			if hasExt(f.Path, ".bin") {
				s.Format = "pytorch"
			}
		}
	}
	wanted := map[string]bool{}
	if s.Format == "gguf" {
		s.Quants = GGUFQuants(r.Files)
		q, err := pickQuant(s.Quants, o.Quant, choose)
		if err != nil {
			return nil, err
		}
		s.Quant = q.Name
		for _, f := range q.Files {
			wanted[f] = true
		}
	}
	for _, f := range r.Files {
		reason := ""
		switch {
		case matchAny(o.Exclude, f.Path):
			reason = "--exclude"
		case matchAny(o.Include, f.Path):
		case s.Format == "gguf" && hasExt(f.Path, ".gguf") && !wanted[f.Path]:
			reason = "another quantization than " + s.Quant
		default:
			for _, rule := range skipRules {
				if rule.match(f.Path, shape) {
					reason = rule.reason
					break
				}
			}
		}
		if reason != "" {
			s.Skipped = append(s.Skipped, Skip{Path: f.Path, Size: f.Size, Reason: reason})
			continue
		}
		s.Files = append(s.Files, f)
	}
	return s, nil
}

// matchAny matches globs as huggingface_hub's allow/ignore patterns do
// (fnmatch: * also crosses "/"), and a pattern ending in "/" takes the
// whole folder.
func matchAny(globs []string, p string) bool {
	for _, g := range globs {
		if strings.HasSuffix(g, "/") {
			g += "*"
		}
		re := globRegexp(g)
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

func globRegexp(g string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// quantName finds the quantization in a GGUF file's name (llama.cpp's
// type names, as GGUF repositories name their files).
var quantName = lazyre.New(`(?i)(?:^|[-_.])((?:I?Q[1-8]_(?:K_[SMLX]L?|K|[01]|NL|XXS|XS|S|M|L))|IQ[1-4]_(?:XXS|XS|S|M|NL)|TQ[12]_0|MXFP4(?:_MOE)?|BF16|F16|F32|FP16|FP32)(?:[-_.]|$)`)

var splitGGUF = lazyre.New(`-(\d{5})-of-(\d{5})\.gguf$`)

// GGUFQuants groups a repository's GGUF files by quantization (a split
// file's shards together, in order); projector files (mmproj) aside.
func GGUFQuants(files []File) []Quant {
	by := map[string]*Quant{}
	var order []string
	for _, f := range files {
		base := path.Base(f.Path)
		if !hasExt(base, ".gguf") || strings.Contains(strings.ToLower(base), "mmproj") {
			continue
		}
		name := strings.TrimSuffix(splitGGUF.ReplaceAllString(base, ""), ".gguf")
		q := name
		if m := quantName.FindStringSubmatch(name); m != nil {
			q = strings.ToUpper(m[1])
		}
		key := path.Dir(f.Path) + "\x00" + q
		if by[key] == nil {
			by[key] = &Quant{Name: q}
			order = append(order, key)
		}
		by[key].Files = append(by[key].Files, f.Path)
		by[key].Size += f.Size
	}
	out := make([]Quant, 0, len(order))
	for _, k := range order {
		q := by[k]
		sort.Strings(q.Files)
		out = append(out, *q)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Size < out[j].Size })
	return out
}

// PreferredQuants is the order a GGUF quantization is taken in when
// neither --quant nor a fit decides: Q4_K_M first (Ollama's default tags
// are Q4_K_M), then larger ones.
var PreferredQuants = []string{"Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_K_S", "Q4_0", "F16", "BF16", "F32"}

func pickQuant(qs []Quant, want string, choose func([]Quant) (string, error)) (Quant, error) {
	if len(qs) == 0 {
		return Quant{}, fmt.Errorf("the repository has no GGUF file")
	}
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = q.Name
	}
	if want == "" && choose != nil {
		w, err := choose(qs)
		if err != nil {
			return Quant{}, err
		}
		want = w
	}
	if want == "" {
		for _, p := range PreferredQuants {
			for _, q := range qs {
				if q.Name == p {
					return q, nil
				}
			}
		}
		return qs[0], nil
	}
	for _, q := range qs {
		if strings.EqualFold(q.Name, want) {
			return q, nil
		}
	}
	return Quant{}, fmt.Errorf("no %s file here: the repository has %s", want, strings.Join(names, ", "))
}

package hubtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gantryhq/gantry/internal/gguf"
)

// Repository names of the suite's fixtures.
const (
	TinyRepo  = "gantry-test/tiny-llama"      // the suite's tiny real model
	GGUFRepo  = "gantry-test/tiny-llama-GGUF" // a GGUF in two quantizations
	QwenRepo  = "Qwen/Qwen3-8B"               // sparse, real config and headers
	OSSRepo   = "openai/gpt-oss-20b"          // sparse, MXFP4, original/ and metal/
	LlamaRepo = "meta-llama/Llama-3.1-8B-Instruct"
)

// GatedToken is the token that may read LlamaRepo (gated "manual").
const GatedToken = "hf_gantrytestgatedtoken"

// Fixtures are where the suite's fixtures come from.
type Fixtures struct {
	// TinyModel is the tiny model's folder ($GANTRY_TINY_MODEL); empty
	// leaves TinyRepo out.
	TinyModel string
	// Configs is internal/inventory/testdata/models (real config.json
	// files).
	Configs string
	// Scratch is a folder for the GGUF files written here.
	Scratch string
}

// chatTemplate is a short Jinja chat template, enough to say one exists.
const chatTemplate = `{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}`

// PushFixtures pushes the suite's repositories and returns their commits:
// the tiny model, a GGUF repository, and sparse checkpoints built from the
// real configs of Qwen3-8B, gpt-oss-20b and Llama-3.1-8B-Instruct (gated),
// each with the side files a real repository holds.
func (s *Server) PushFixtures(fx Fixtures) (map[string]string, error) {
	commits := map[string]string{}
	push := func(id string, files []*File, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		c, err := s.Push(id, files...)
		commits[id] = c
		return err
	}
	if fx.TinyModel != "" {
		files, err := Dir(fx.TinyModel)
		if err := push(TinyRepo, files, err); err != nil {
			return nil, err
		}
	}
	ggufFiles, err := tinyGGUFs(fx.Scratch)
	if err := push(GGUFRepo, ggufFiles, err); err != nil {
		return nil, err
	}
	cfg := func(dir string) []byte {
		b, e := os.ReadFile(filepath.Join(fx.Configs, dir, "config.json"))
		if e != nil && err == nil {
			err = e
		}
		return b
	}
	tokCfg := Bytes("tokenizer_config.json", []byte(`{"chat_template": `+jsonString(chatTemplate)+`, "eos_token": "<|im_end|>"}`))
	qwen, err := Checkpoint(cfg("Qwen--Qwen3-8B"), tokCfg, readme("Qwen3-8B"),
		Bytes("generation_config.json", []byte(`{"do_sample": true, "temperature": 0.6}`)))
	if err := push(QwenRepo, qwen, err); err != nil {
		return nil, err
	}
	// gpt-oss ships the original checkpoint and a Metal one beside the
	// transformers one; engines read neither.
	oss, err := Checkpoint(cfg("openai--gpt-oss-20b"), readme("gpt-oss-20b"),
		Bytes("chat_template.jinja", []byte(chatTemplate)),
		Bytes("original/config.json", []byte(`{"num_hidden_layers": 24}`)),
		Sparse("original/model.safetensors", []byte{16, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}, 4<<20, 16),
		Sparse("metal/model.bin", nil, 2<<20, 0))
	if err := push(OSSRepo, oss, err); err != nil {
		return nil, err
	}
	llama, err := Checkpoint(cfg("meta-llama--Llama-3.1-8B-Instruct"), tokCfg, readme("Llama-3.1-8B-Instruct"),
		Bytes("original/params.json", []byte(`{"dim": 4096, "n_layers": 32}`)),
		Sparse("original/consolidated.00.pth", nil, 8<<20, 0),
		Sparse("original/tokenizer.model", nil, 1<<20, -1))
	if err := push(LlamaRepo, llama, err); err != nil {
		return nil, err
	}
	s.Gate(LlamaRepo, "manual", GatedToken)
	return commits, nil
}

func readme(name string) *File {
	return Bytes("README.md", []byte("---\nlicense: apache-2.0\n---\n# "+name+"\n\nA stand-in of the Hub's repository, for gantry's tests.\n"))
}

func jsonString(s string) string {
	b := []byte{'"'}
	for _, r := range s {
		switch r {
		case '"', '\\':
			b = append(b, '\\', byte(r))
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, string(r)...)
		}
	}
	return string(append(b, '"'))
}

// tinyGGUFs writes the tiny GGUF model in two quantizations, one file
// each, named as GGUF repositories on the Hub name them.
func tinyGGUFs(dir string) ([]*File, error) {
	if dir == "" {
		return nil, fmt.Errorf("hubtest: Fixtures.Scratch is needed for the GGUF files")
	}
	var out []*File
	for _, v := range []struct {
		name string
		typ  gguf.GGMLType
	}{{"tiny-llama-Q8_0.gguf", gguf.Q8_0}, {"tiny-llama-F16.gguf", gguf.F16}} {
		p := filepath.Join(dir, v.name)
		if _, err := gguf.TinyLlama(p, gguf.Tiny{Type: v.typ}); err != nil {
			return nil, err
		}
		f, err := OnDisk(v.name, p)
		if err != nil {
			return nil, err
		}
		f.weightsAt = weightOffset(f)
		out = append(out, f)
	}
	return append(out, readme("tiny-llama-GGUF")), nil
}

// HashCache is where the sha256 of the sparse shards are kept between
// runs (hashing their 46 GB of zeros takes half a minute): under
// $GANTRY_TEST_CACHE, else ~/.cache/gantry-test, where ./test.sh keeps
// what it installs.
func HashCache() string {
	cache := os.Getenv("GANTRY_TEST_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "gantry-test")
	}
	return filepath.Join(cache, "hubstandin-sha256")
}

// Configs is the repository's folder of real config.json files.
func Configs() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "inventory", "testdata", "models")
}

// ForTest starts a stand-in with the suite's fixtures, closed when tb
// ends; tiny is the tiny model's folder ("" leaves it out).
func ForTest(tb testing.TB, tiny string) (*Server, map[string]string) {
	tb.Helper()
	s, err := New(Options{HashCache: HashCache()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	commits, err := s.PushFixtures(Fixtures{TinyModel: tiny, Configs: Configs(), Scratch: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	return s, commits
}

// Python is the Python of the venv ./test.sh makes with the pinned
// huggingface_hub ($GANTRY_HUB_PYTHON, else its place in the cache).
func Python(tb testing.TB) string {
	p := os.Getenv("GANTRY_HUB_PYTHON")
	if p == "" {
		p = filepath.Join(filepath.Dir(HashCache()), "hubclient", "bin", "python")
	}
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("the huggingface_hub venv is missing (%v): ./test.sh installs it", err)
	}
	return p
}

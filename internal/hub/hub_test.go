package hub

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/hub/hubtest"
)

// standIn starts the stand-in Hub with the suite's fixtures (the tiny
// model aside: these tests do not need it).
func standIn(t *testing.T) (*hubtest.Server, map[string]string) { return hubtest.ForTest(t, "") }

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"Qwen/Qwen3-8B":                         {"Qwen/Qwen3-8B", "main"},
		"Qwen/Qwen3-8B@v1.0":                    {"Qwen/Qwen3-8B", "v1.0"},
		"https://huggingface.co/org/m":          {"org/m", "main"},
		"https://huggingface.co/org/m/tree/dev": {"org/m", "dev"},
	} {
		if got, err := ParseRef(in); err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"qwen", "a/b/c", "../x/y", "a/..", "org/na me", ""} {
		if _, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) accepted", bad)
		}
	}
}

func TestReadEnv(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("hf_fromfile\n"), 0o600)
	env := map[string]string{"HF_HOME": dir, "HF_ENDPOINT": "http://mirror:8080/", "HF_HUB_OFFLINE": "yes"}
	e := ReadEnv(func(k string) string { return env[k] })
	if e.Endpoint != "http://mirror:8080" || e.Token != "hf_fromfile" || !e.Offline || e.Cache != filepath.Join(dir, "hub") {
		t.Errorf("%+v", e)
	}
	env["HF_TOKEN"], env["HF_HUB_CACHE"], env["HF_HUB_OFFLINE"] = "hf_env", "/c", "0"
	e = ReadEnv(func(k string) string { return env[k] })
	if e.Token != "hf_env" || e.Cache != "/c" || e.Offline {
		t.Errorf("%+v", e)
	}
	c := New("", "hf_config", e)
	if c.Endpoint != "http://mirror:8080" || c.Token != "hf_config" {
		t.Errorf("config's token and env's endpoint: %+v", c)
	}
	if c := New("", "", Env{}); c.Endpoint != DefaultEndpoint {
		t.Errorf("default endpoint %q", c.Endpoint)
	}
}

// TestResolveAndRanges: one commit, every file with its size and digest,
// and a file's bytes through a range (an LFS file through the CDN's
// redirect, without the token).
func TestResolveAndRanges(t *testing.T) {
	s, commits := standIn(t)
	c := New(s.URL, hubtest.GatedToken, Env{})
	ctx := context.Background()
	r, err := c.Resolve(ctx, Ref{Repo: hubtest.LlamaRepo, Revision: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Commit != commits[hubtest.LlamaRepo] || len(r.Files) < 8 {
		t.Fatalf("commit %s (pushed %s), %d files", r.Commit, commits[hubtest.LlamaRepo], len(r.Files))
	}
	f, _ := r.File("model-00001-of-00004.safetensors")
	if f.Size < 4e9 || len(f.SHA256) != 64 || len(f.BlobID) != 40 {
		t.Errorf("shard: %+v", f)
	}
	body, err := c.Open(ctx, r, f.Path, 0, 8)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if len(b) != 8 || s.WeightsServed() != 0 {
		t.Errorf("8 bytes asked, %d came, %d weight bytes served", len(b), s.WeightsServed())
	}
	cfg, err := c.ReadFile(ctx, r, "config.json", 1<<20)
	if err != nil || !strings.Contains(string(cfg), "LlamaForCausalLM") {
		t.Errorf("config.json: %v %.60s", err, cfg)
	}
}

// TestErrorWords: each refusal of the Hub comes out as a kind with words
// that say what to do.
func TestErrorWords(t *testing.T) {
	s, _ := standIn(t)
	ctx := context.Background()
	cases := []struct {
		token string
		env   Env
		ref   Ref
		file  string
		kind  Kind
		words string
	}{
		{"", Env{}, Ref{hubtest.LlamaRepo, "main"}, "config.json", Gated, "accept its licence at " + s.URL + "/" + hubtest.LlamaRepo},
		{"hf_other", Env{}, Ref{hubtest.LlamaRepo, "main"}, "config.json", Gated, "not on its authorized list"},
		{"", Env{}, Ref{"nobody/nothing", "main"}, "", NotFound, "if it is private, set HF_TOKEN or hub.token"},
		{"hf_x", Env{}, Ref{"nobody/nothing", "main"}, "", NotFound, "with your token"},
		{"", Env{}, Ref{hubtest.QwenRepo, "v9"}, "", NoRevision, `has no revision "v9"`},
		{"", Env{}, Ref{hubtest.QwenRepo, "main"}, "nothing.json", NoFile, "has no file nothing.json"},
		{"", Env{Offline: true}, Ref{hubtest.QwenRepo, "main"}, "", Offline, "HF_HUB_OFFLINE is set"},
	}
	for _, k := range cases {
		c := New(s.URL, k.token, k.env)
		var err error
		if k.file == "" {
			_, err = c.Resolve(ctx, k.ref)
		} else {
			r := &Repo{Ref: k.ref, Commit: "main"}
			_, err = c.ReadFile(ctx, r, k.file, 1<<20)
		}
		var he *Error
		if !errors.As(err, &he) || he.Kind != k.kind || !strings.Contains(err.Error(), k.words) {
			t.Errorf("%s %s (token %q): %v, want %s with %q", k.ref, k.file, k.token, err, k.kind, k.words)
		}
	}
	c := New("http://127.0.0.1:1", "", Env{})
	if _, err := c.Resolve(ctx, Ref{"a/b", "main"}); err == nil || !strings.Contains(err.Error(), "cannot reach the Hub at http://127.0.0.1:1") {
		t.Errorf("unreachable: %v", err)
	}
}

// TestSelect: what no engine reads stays behind, with its reason; a GGUF
// repository gives one quantization.
func TestSelect(t *testing.T) {
	s, _ := standIn(t)
	c := New(s.URL, hubtest.GatedToken, Env{})
	ctx := context.Background()
	names := func(fs []File) string {
		var n []string
		for _, f := range fs {
			n = append(n, f.Path)
		}
		return strings.Join(n, " ")
	}
	oss, err := c.Resolve(ctx, Ref{hubtest.OSSRepo, "main"})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := Select(oss, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := names(sel.Files)
	if sel.Format != "safetensors" || strings.Contains(got, "original/") || strings.Contains(got, "metal/") || strings.Contains(got, ".gitattributes") ||
		!strings.Contains(got, "model-00003-of-00003.safetensors") || !strings.Contains(got, "chat_template.jinja") {
		t.Errorf("gpt-oss selection: %s (skipped %+v)", got, sel.Skipped)
	}
	sel, _ = Select(oss, Options{Include: []string{"original/"}, Exclude: []string{"README.md"}}, nil)
	if got := names(sel.Files); !strings.Contains(got, "original/model.safetensors") || strings.Contains(got, "README") {
		t.Errorf("--include original/ --exclude README.md: %s", got)
	}
	g, err := c.Resolve(ctx, Ref{hubtest.GGUFRepo, "main"})
	if err != nil {
		t.Fatal(err)
	}
	sel, err = Select(g, Options{}, nil)
	if err != nil || sel.Quant != "Q8_0" || names(sel.Files) != "README.md tiny-llama-Q8_0.gguf" || len(sel.Quants) != 2 {
		t.Errorf("GGUF default: %v %s %s %+v", err, sel.Quant, names(sel.Files), sel.Quants)
	}
	sel, err = Select(g, Options{Quant: "f16"}, nil)
	if err != nil || names(sel.Files) != "README.md tiny-llama-F16.gguf" {
		t.Errorf("--quant f16: %v %s", err, names(sel.Files))
	}
	if _, err := Select(g, Options{Quant: "Q2_K"}, nil); err == nil || !strings.Contains(err.Error(), "no Q2_K file here: the repository has Q8_0, F16") {
		t.Errorf("--quant Q2_K: %v", err)
	}
}

func TestGGUFQuants(t *testing.T) {
	files := []File{
		{Path: "Qwen3-8B-Q4_K_M.gguf", Size: 5}, {Path: "Qwen3-8B-Q8_0.gguf", Size: 9},
		{Path: "BF16/Qwen3-8B-BF16-00002-of-00002.gguf", Size: 8}, {Path: "BF16/Qwen3-8B-BF16-00001-of-00002.gguf", Size: 8},
		{Path: "mmproj-F16.gguf", Size: 1}, {Path: "Qwen3-8B-UD-IQ2_XXS.gguf", Size: 3},
	}
	var got []string
	for _, q := range GGUFQuants(files) {
		got = append(got, q.Name+":"+strings.Join(q.Files, ","))
	}
	want := "IQ2_XXS:Qwen3-8B-UD-IQ2_XXS.gguf Q4_K_M:Qwen3-8B-Q4_K_M.gguf Q8_0:Qwen3-8B-Q8_0.gguf BF16:BF16/Qwen3-8B-BF16-00001-of-00002.gguf,BF16/Qwen3-8B-BF16-00002-of-00002.gguf"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
}

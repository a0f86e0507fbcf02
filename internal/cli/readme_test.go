package cli

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/gguf"
)

// docBlock is one ```yaml block of a markdown file.
type docBlock struct {
	file string
	line int    // the line of the opening fence
	mark string // "base", "fragment" or "" (a whole config)
	text string
}

// Markers a block may carry on the line right above its fence.
const (
	markBase     = "<!-- config: base -->"
	markFragment = "<!-- config: fragment -->"
)

// yamlBlocks extracts every ```yaml block of a markdown file with the
// marker above it, if any.
func yamlBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []docBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```yaml" {
			continue
		}
		b := docBlock{file: file, line: i + 1}
		if i > 0 {
			switch strings.TrimSpace(lines[i-1]) {
			case markBase:
				b.mark = "base"
			case markFragment:
				b.mark = "fragment"
			}
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: a ```yaml block that never ends", file, b.line)
		}
		b.text = strings.Join(body, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

// TestREADMEConfigBlocks: every config block of README.md and TESTING.md,
// and examples/gantry.yaml, passes the validation `gantry config validate`
// runs (the same function), on a box that has the models they name. A
// block marked as a fragment is validated merged into the block marked as
// the base; an unmarked block must be a whole config.
func TestREADMEConfigBlocks(t *testing.T) {
	var blocks []docBlock
	for _, f := range []string{"../../README.md", "../../TESTING.md"} {
		blocks = append(blocks, yamlBlocks(t, f)...)
	}
	var base *docBlock
	for i := range blocks {
		if blocks[i].mark == "base" {
			if base != nil {
				t.Fatalf("%s:%d: a second base block (the first is at line %d)", blocks[i].file, blocks[i].line, base.line)
			}
			base = &blocks[i]
		}
	}
	if len(blocks) < 8 || base == nil {
		t.Fatalf("found %d yaml blocks, base %v: the extraction is broken", len(blocks), base != nil)
	}
	example, err := os.ReadFile("../../examples/gantry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	blocks = append(blocks, docBlock{file: "../../examples/gantry.yaml", line: 1, text: string(example)})
	for _, b := range blocks {
		t.Run(fmt.Sprintf("%s:%d", filepath.Base(b.file), b.line), func(t *testing.T) {
			text := b.text
			if b.mark == "fragment" {
				text = mergeYAML(t, base.text, b.text)
			}
			validateDocConfig(t, text)
		})
	}
}

var envRef = regexp.MustCompile(`\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}`)

// validateDocConfig runs the validation of `config validate` on text in a
// temporary HOME where every model's path holds a tiny real checkpoint
// and every ${env.NAME} the text uses is set.
func validateDocConfig(t *testing.T, text string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	for _, m := range envRef.FindAllStringSubmatch(text, -1) {
		t.Setenv(m[1], "sk-doc-"+strings.ToLower(m[1]))
	}
	path := filepath.Join(t.TempDir(), "gantry.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("%v\n--- the block:\n%s", err, text)
	}
	for _, name := range c.ModelNames() {
		if p := c.ModelPath(c.Models[name]); p != "" {
			writeCheckpoint(t, p)
		}
	}
	_, probs, err := validate(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if probs.Errors() > 0 {
		t.Errorf("config validate finds problems:\n%s\n--- the block:\n%s", probs, text)
	}
}

// writeCheckpoint puts a tiny real model at p: a GGUF for a .gguf path,
// else a folder with a Llama config.json and a safetensors file whose
// header is real and whose data is sparse.
func writeCheckpoint(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(p, ".gguf") {
		if _, err := gguf.TinyLlama(p, gguf.Tiny{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := `{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
 "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "vocab_size": 1000, "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}`
	if err := os.WriteFile(filepath.Join(p, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	off := int64(0)
	add := func(name string, shape ...int64) {
		n := int64(2) // BF16
		for _, d := range shape {
			n *= d
		}
		hdr[name] = map[string]any{"dtype": "BF16", "shape": shape, "data_offsets": []int64{off, off + n}}
		off += n
	}
	add("model.embed_tokens.weight", 1000, 256)
	add("lm_head.weight", 1000, 256)
	add("model.norm.weight", 256)
	for l := range 2 {
		pre := fmt.Sprintf("model.layers.%d.", l)
		add(pre+"self_attn.q_proj.weight", 256, 256)
		add(pre+"self_attn.k_proj.weight", 128, 256)
		add(pre+"self_attn.v_proj.weight", 128, 256)
		add(pre+"self_attn.o_proj.weight", 256, 256)
		add(pre+"mlp.gate_proj.weight", 512, 256)
		add(pre+"mlp.up_proj.weight", 512, 256)
		add(pre+"mlp.down_proj.weight", 256, 512)
		add(pre+"input_layernorm.weight", 256)
		add(pre+"post_attention_layernorm.weight", 256)
	}
	b, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(p, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := binary.Write(f, binary.LittleEndian, uint64(len(b))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 + int64(len(b)) + off); err != nil {
		t.Fatal(err)
	}
}

// mergeYAML merges fragment into base: mappings key by key (the
// fragment's values win), anything else replaced.
func mergeYAML(t *testing.T, base, fragment string) string {
	t.Helper()
	var b, f map[string]any
	if err := yaml.Unmarshal([]byte(base), &b); err != nil {
		t.Fatalf("base: %v", err)
	}
	if err := yaml.Unmarshal([]byte(fragment), &f); err != nil {
		t.Fatalf("fragment: %v", err)
	}
	out, err := yaml.Marshal(mergeMaps(b, f))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func mergeMaps(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = mergeMaps(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

// TestYAMLBlocksExtraction: the extractor finds blocks, their markers and
// their text, so the test above cannot pass by finding nothing.
func TestYAMLBlocksExtraction(t *testing.T) {
	md := "x\n<!-- config: base -->\n```yaml\na: 1\n```\ntext ```yaml inline\n\n<!-- config: fragment -->\n```yaml\nb: {c: 2}\n```\n```yaml\nd: 3\n```\n"
	f := filepath.Join(t.TempDir(), "x.md")
	os.WriteFile(f, []byte(md), 0o644)
	got := yamlBlocks(t, f)
	if len(got) != 3 || got[0].mark != "base" || got[1].mark != "fragment" || got[2].mark != "" ||
		got[0].text != "a: 1\n" || got[1].line != 9 {
		t.Fatalf("%+v", got)
	}
	merged := mergeYAML(t, "a: {x: 1, y: 2}\nb: 1\n", "a: {y: 3}\nc: 4\n")
	if merged != "a:\n    x: 1\n    \"y\": 3\nb: 1\nc: 4\n" {
		t.Errorf("merged:\n%s", merged)
	}
}

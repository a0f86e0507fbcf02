package recipes

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/inventory"
	"github.com/gantryhq/gantry/internal/plan"
)

// spark is a DGX Spark as gantry plans for it: a GB10 (SM121) on unified
// memory, 119 GiB of which CUDA may take, 8 GiB kept back.
var spark = plan.Box{Facts: gpu.Facts{Unified: true, GPUs: []gpu.GPU{{Name: "NVIDIA GB10", ComputeCap: "12.1", Unified: true}}},
	Total: 119 << 30, Budget: 111 << 30}

// TestEveryRecipe: each recipe names a Hub repository, an engine gantry
// knows and its sources; as a models: entry it passes the config schema
// and the config's validation; and the planner's engine × checkpoint ×
// GB10 rules find nothing against it (a recipe known to work must not be
// a known-bad combination).
func TestEveryRecipe(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 5 {
		t.Fatalf("%d recipes", len(all))
	}
	schema := compileSchema(t)
	for _, r := range all {
		t.Run(r.Name, func(t *testing.T) {
			if r.File != r.Name+".yaml" || r.Title == "" || len(r.Sources) == 0 {
				t.Errorf("file %s, title %q, %d sources", r.File, r.Title, len(r.Sources))
			}
			for _, s := range r.Sources {
				if s.What == "" || !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "seed: ") {
					t.Errorf("source %+v: say what it says and where", s)
				}
			}
			if _, err := hub.ParseRef(r.Repo); err != nil {
				t.Error(err)
			}
			d, err := engine.Lookup(r.Model.Engine)
			if err != nil {
				t.Fatal(err)
			}
			gguf := r.Quant != ""
			if loadsGGUF := contains(engine.Loading(engine.FormatGGUF), d.Name); gguf != loadsGGUF {
				t.Errorf("quant %q with engine %s (a GGUF engine: %v)", r.Quant, d.Name, loadsGGUF)
			}
			entry := map[string]any{"engine": r.Model.Engine, "path": "recipes/" + r.Name}
			for k, v := range map[string]any{"runtime": r.Model.Runtime, "image": r.Model.Image, "memory": r.Model.Memory} {
				if v != "" {
					entry[k] = v
				}
			}
			if r.Model.Context > 0 {
				entry["context"] = r.Model.Context
			}
			if len(r.Model.Args) > 0 {
				entry["args"] = r.Model.Args
			}
			if len(r.Model.Env) > 0 {
				entry["env"] = r.Model.Env
			}
			src, _ := yaml.Marshal(map[string]any{"root": t.TempDir(), "memory": map[string]any{"total": "119GiB", "reserve": "8GiB"},
				"models": map[string]any{r.Name: entry}})
			if err := schema.Validate(jsonValue(t, src)); err != nil {
				t.Errorf("schema: %v\n%s", err, src)
			}
			c, err := config.Parse(r.File, src)
			if err != nil {
				t.Fatalf("config: %v\n%s", err, src)
			}
			// The checkpoint as the recipe says it is (the rules need no
			// more before anything is downloaded).
			info := &inventory.Model{Format: "safetensors", Kind: "generation", MaxContext: 1 << 20,
				Quant: inventory.Quant{Method: r.Quantization.Method, Algo: r.Quantization.Algo, Bits: bits(r.Quantization.Algo)}}
			if gguf {
				info.Format = "gguf"
			}
			if r.Kind != "" {
				info.Kind = r.Kind
			}
			p := plan.One(c, c.Models[r.Name], spark, func(string) (*inventory.Model, error) { return info, nil })
			for _, f := range p.Findings {
				if f.Level != plan.LevelFixed {
					t.Errorf("%s: %s", f.Rule, f)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func bits(algo string) int {
	switch {
	case strings.Contains(algo, "FP4"), strings.HasPrefix(algo, "Q4"):
		return 4
	case strings.Contains(algo, "8"):
		return 8
	}
	return 0
}

func TestFind(t *testing.T) {
	if r, err := Find("qwen3-8b-fp8"); err != nil || r.Repo != "nvidia/Qwen3-8B-FP8" {
		t.Errorf("%+v %v", r, err)
	}
	if _, err := Find("nope"); err == nil || !strings.Contains(err.Error(), "gantry recipes lists them") {
		t.Errorf("%v", err)
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(config.Schema))
	if err != nil {
		t.Fatal(err)
	}
	comp := jsonschema.NewCompiler()
	if err := comp.AddResource("gantry.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := comp.Compile("gantry.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jsonValue(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

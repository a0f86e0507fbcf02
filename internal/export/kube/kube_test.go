package kube

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/inventory"
	"github.com/gantryhq/gantry/internal/plan"
)

var update = flag.Bool("update", false, "rewrite golden files")

// noFiles is the planner's inspector for a box that holds none of the
// models' files: the plans come from memory: alone.
func noFiles(string) (*inventory.Model, error) { return nil, fs.ErrNotExist }

// secrets are set while the golden config loads: none may reach a manifest.
var secrets = map[string]string{
	"GANTRY_TEST_HF_TOKEN": "hf-secret-value-1",
	"GANTRY_TEST_VLLM_KEY": "vllm-secret-value-2",
}

func load(t *testing.T, file string) *config.Config {
	t.Helper()
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	os.Unsetenv("GANTRY_TEST_CMD_TOKEN")  // unset: kept as a reference all the same
	t.Setenv("HF_HUB_CACHE", t.TempDir()) // this box's cache holds none of the models
	c, err := config.LoadKeepingUnsetEnv(file)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func export(t *testing.T, c *config.Config, models ...string) (*Result, error) {
	t.Helper()
	return Export(c, Options{Models: models, Plans: plan.Make(c, PlanBox(c), noFiles)})
}

// TestGoldenManifests pins the manifests of every engine × runtime (and
// models across nodes): a change is a decision seen in review. Rewrite
// with go test ./internal/export/kube -update.
func TestGoldenManifests(t *testing.T) {
	c := load(t, "testdata/engines.yaml")
	res, err := export(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != len(c.Models)+1 {
		t.Fatalf("%d files for %d models", len(res.Files), len(c.Models))
	}
	for _, f := range res.Files {
		t.Run(f.Name, func(t *testing.T) {
			b, err := Marshal("", f)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "golden", f.Name), b)
			for k, v := range secrets {
				if strings.Contains(string(b), v) {
					t.Errorf("the value of %s is in the manifest", k)
				}
			}
			if strings.Contains(string(b), "sk-literal-value") {
				t.Error("a literal secret-named env value is in the manifest")
			}
			// every document is a YAML object with a kind
			dec := yaml.NewDecoder(strings.NewReader(string(b)))
			for {
				var o map[string]any
				if err := dec.Decode(&o); err != nil {
					break
				}
				if o["kind"] == nil || o["apiVersion"] == nil {
					t.Errorf("an object without kind or apiVersion: %v", o)
				}
			}
		})
	}
	golden(t, filepath.Join("testdata", "golden", "header.txt"), []byte(Header(res)))
}

// TestEveryEngineAndRuntime: each engine × runtime has its golden — the
// manifest of testdata/engines.yaml's "<engine>-<runtime>" model (pinned
// by TestGoldenManifests), or, for a pair gantry refuses to run at all
// (an engine that runs natively only: its image is for the export alone,
// as sim-native's and command-native's manifests show), the config's
// refusal, pinned in testdata/golden/refused.txt. A new engine or runtime
// without either fails here.
func TestEveryEngineAndRuntime(t *testing.T) {
	c := load(t, "testdata/engines.yaml")
	var refused strings.Builder
	for _, d := range engine.All() {
		for _, rt := range []string{config.RuntimeNative, config.RuntimeDocker} {
			name := d.Name + "-" + rt
			one := fmt.Sprintf("engines: {%s: {image: \"example/%s:v1\"}}\nmodels: {%s: {engine: %s, runtime: %s, memory: 1GiB}}\n", d.Name, d.Name, name, d.Name, rt)
			_, probs := config.ParseAll("t.yaml", []byte(one))
			var why []string
			for _, p := range probs {
				if !p.Warning && p.Path == "models."+name+".runtime" {
					why = append(why, p.Msg)
				}
			}
			m := c.Models[name]
			switch {
			case len(why) > 0 && m != nil:
				t.Errorf("%s: the config refuses it (%s), yet testdata/engines.yaml has it", name, strings.Join(why, "; "))
			case len(why) > 0:
				fmt.Fprintf(&refused, "%s × %s: %s\n", d.Name, rt, strings.Join(why, "; "))
			case m == nil || m.Engine != d.Name || m.Runtime != rt:
				t.Errorf("no model %s (engine %s, runtime %s) in testdata/engines.yaml: every engine × runtime the config takes needs a golden manifest", name, d.Name, rt)
			default:
				if _, err := os.Stat(filepath.Join("testdata", "golden", name+".yaml")); err != nil {
					t.Errorf("%s: no golden manifest: %v (go test ./internal/export/kube -update writes it)", name, err)
				}
			}
		}
	}
	golden(t, filepath.Join("testdata", "golden", "refused.txt"), []byte(refused.String()))
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/export/kube -update writes it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s changed; got:\n%s", path, got)
	}
}

// TestRefusals: what cannot be expressed is refused with its reason, and
// nothing is exported.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"native engine, no image", `models: {s: {engine: sim, port: 30500, memory: 1GiB}}`,
			"s: runtime native, engine sim: no container image (set models.s.image or engines.sim.image"},
		{"outside the claim", `root: /srv/ai
kubernetes: {models_volume: {pvc: models}}
models: {g: {engine: llamacpp, runtime: docker, path: /elsewhere/tiny.gguf, port: 30500, memory: 1GiB}}`,
			"g: /elsewhere is outside /srv/ai/models, which claim models holds"},
		{"env in the image", `models: {s: {engine: vllm, runtime: docker, image: "${env.GANTRY_TEST_IMAGE}", path: m, port: 30500, memory: 1GiB}}`,
			"s: models.s.image names ${env.…}; a manifest can take a Secret's value only in env:, args: and command:"},
		{"names clash", `engines: {sim: {image: "x/sim:v1"}}
models: {Chat: {engine: sim, port: 30500, memory: 1GiB}, chat: {engine: sim, port: 30501, memory: 1GiB}}`,
			`its Kubernetes name "chat" is also`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GANTRY_TEST_IMAGE", "vllm/vllm-openai:v0.11.0")
			c, err := config.Parse("t.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			res, err := export(t, c)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v; want a refusal saying %q", res, err, tc.want)
			}
		})
	}
	c, _ := config.Parse("t.yaml", []byte(`models: {s: {engine: sim, port: 30500, memory: 1GiB}}`))
	if _, err := export(t, c, "nope"); err == nil || !strings.Contains(err.Error(), `no model "nope"`) {
		t.Errorf("an unknown model: %v", err)
	}
}

// TestOnlyChosenModels: --models exports those, and a model the config
// cannot express is no obstacle when it is left out.
func TestOnlyChosenModels(t *testing.T) {
	c, err := config.Parse("t.yaml", []byte(`models:
  a: {engine: vllm, runtime: docker, path: m, port: 30500, memory: 1GiB}
  s: {engine: sim, port: 30501, memory: 1GiB}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := export(t, c, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 || res.Files[1].Name != "a.yaml" {
		t.Errorf("files %v", res.Files)
	}
}

// TestPlannerFlagsCarried: the command is the one gantry itself would
// run, with what the planner decided from the model's files — the rules'
// quantization flag, the context and the memory fraction for the node.
func TestPlannerFlagsCarried(t *testing.T) {
	c, err := config.Parse("t.yaml", []byte(`root: /srv/ai
kubernetes: {node_memory: 128GiB}
models:
  scout: {engine: sglang, path: llama4/scout-nvfp4, port: 30000, memory: 64GiB, mode: always-on}`))
	if err != nil {
		t.Fatal(err)
	}
	nvfp4 := func(string) (*inventory.Model, error) {
		return &inventory.Model{Format: "safetensors", Kind: "generation", MaxContext: 131072,
			Quant: inventory.Quant{Method: "modelopt", Algo: "NVFP4", Bits: 4}}, nil
	}
	res, err := Export(c, Options{Plans: plan.Make(c, PlanBox(c), nvfp4)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Marshal("", res.Files[1])
	for _, want := range []string{"- --quantization\n", "- modelopt_fp4\n", "- --context-length\n", `- "32768"`, "- --mem-fraction-static\n", `- "0.50"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the command lacks %q:\n%s", want, b)
		}
	}
}

// TestNotesNameWhatIsDropped: what the third round added to a model's
// serving — named keys with their models, limits and priorities, a
// model's max_concurrency, traces — is not in any exported object, so
// the notes say so rather than dropping it silently.
func TestNotesNameWhatIsDropped(t *testing.T) {
	t.Setenv("GANTRY_TEST_ALICE_KEY", "sk-alice-value")
	c, err := config.Parse("t.yaml", []byte(`auth:
  keys:
    alice: {key: "${env.GANTRY_TEST_ALICE_KEY}", models: [a], rpm: 60, priority: batch}
telemetry: {otlp_endpoint: http://127.0.0.1:4318}
models:
  a: {engine: vllm, runtime: docker, path: m, port: 30500, memory: 1GiB, max_concurrency: 4}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := export(t, c)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(res.Notes, "\n")
	for _, want := range []string{"auth.keys (alice)", "a: max_concurrency 4", "telemetry:"} {
		if !strings.Contains(notes, want) {
			t.Errorf("no note on %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "sk-alice-value") {
		t.Error("a key's value is in the notes")
	}
}

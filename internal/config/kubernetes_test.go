package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestEnvTemplatesKept: the text as written is kept for every value that
// names ${env.X}, and LoadKeepingUnsetEnv leaves an unset one as written
// where Load refuses it.
func TestEnvTemplatesKept(t *testing.T) {
	t.Setenv("GANTRY_TEST_TOKEN", "hf-secret")
	os.Unsetenv("GANTRY_TEST_UNSET")
	f := filepath.Join(t.TempDir(), "g.yaml")
	os.WriteFile(f, []byte(`
models:
  a:
    engine: sim
    memory: 1GiB
    env: {HF_TOKEN: "${env.GANTRY_TEST_TOKEN}", PLAIN: x, BOTH: "Bearer ${env.GANTRY_TEST_UNSET}"}
    args: [--key, "${env.GANTRY_TEST_TOKEN}", "$${env.LITERAL}"]
`), 0o644)
	if _, err := Load(f); err == nil {
		t.Fatal("Load accepted an unset variable")
	}
	c, err := LoadKeepingUnsetEnv(f)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Models["a"]
	if m.Env["HF_TOKEN"] != "hf-secret" || m.Env["BOTH"] != "Bearer ${env.GANTRY_TEST_UNSET}" {
		t.Errorf("env %v", m.Env)
	}
	if tmpl, ok := c.EnvTemplate("models", "a", "env", "HF_TOKEN"); !ok || tmpl != "${env.GANTRY_TEST_TOKEN}" {
		t.Errorf("template %q %v", tmpl, ok)
	}
	if _, ok := c.EnvTemplate("models", "a", "env", "PLAIN"); ok {
		t.Error("a plain value has a template")
	}
	if _, ok := c.EnvTemplate("models", "a", "args", "2"); ok {
		t.Error("an escaped $${env.X} counts as a reference")
	}
	want := []string{"models.a.args.1", "models.a.env.BOTH", "models.a.env.HF_TOKEN"}
	if got := c.EnvTemplatePaths("models.a"); !reflect.DeepEqual(got, want) {
		t.Errorf("paths %v, want %v", got, want)
	}
	got := MapEnvTemplate("Bearer ${env.X} $${env.Y}", func(n string) string { return "$(" + n + ")" })
	if got != "Bearer $(X) ${env.Y}" {
		t.Errorf("MapEnvTemplate: %q", got)
	}
}

func TestKubeDefaults(t *testing.T) {
	c, err := Parse("t.yaml", []byte("root: /srv/ai\nmemory: {total: 120GiB}\nmodels: {a: {engine: sim, memory: 1GiB}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kube()
	if k.Namespace != "gantry" || k.ModelsVolume.HostPath != "/srv/ai/models" || k.Secret != "gantry-env" ||
		k.Gateway != "inference-gateway" || k.NodeMemory != 120<<30 || k.ShmSize != 16<<30 || k.EndpointPicker != DefaultEndpointPicker {
		t.Errorf("defaults %+v", k)
	}
}

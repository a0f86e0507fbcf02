package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{
		"64GiB": 64 << 30, "512MiB": 512 << 20, "1024": 1024, "1.5GiB": 3 << 29, "10GB": 10e9,
		"auto": SizeAuto, " 8 GiB ": 8 << 30, "2TiB": 2 << 40, "100B": 100,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "64 gigs", "1e30TiB", "x1"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if s := Size(64 << 30).String(); s != "64GiB" {
		t.Errorf("String = %s", s)
	}
	if s := FormatBytes(1536 << 20); s != "1.5GiB" {
		t.Errorf("FormatBytes = %s", s)
	}
}

func TestDefaultsFromSeed(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
models:
  scout: {engine: sglang, path: llama4/scout, memory: 60GiB}
  other: {engine: sglang, path: x, memory: 10GiB}
  v: {engine: vllm, path: /abs/v, memory: 10GiB}
  tiny: {engine: ollama, model: "qwen3:8b", memory: 4GiB}
  s: {engine: sim, memory: 1GiB}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:4000" || !strings.HasSuffix(c.Root, "/ai") {
		t.Errorf("listen %s root %s", c.Listen, c.Root)
	}
	if c.Memory.Total != SizeAuto || c.Memory.Reserve != 8<<30 {
		t.Errorf("memory %+v", c.Memory)
	}
	// The first SGLang model (by name) gets the seed's 30000; another gets a
	// port from the range; vLLM gets 8000; Ollama models share 11434.
	if p := c.Models["other"].Port; p != 30000 {
		t.Errorf("first sglang model port %d, want 30000", p)
	}
	if p := c.Models["scout"].Port; p < 30100 || p > 30999 {
		t.Errorf("second sglang model port %d, want from the range", p)
	}
	if c.Models["v"].Port != 8000 || c.Models["tiny"].Port != 11434 {
		t.Errorf("vllm %d ollama %d", c.Models["v"].Port, c.Models["tiny"].Port)
	}
	m := c.Models["scout"]
	if m.Runtime != RuntimeDocker || m.Image != "lmsysorg/sglang:spark" || m.Mode != ModeOnDemand {
		t.Errorf("model defaults %+v", m)
	}
	if m.IdleTimeout.D() != 15*time.Minute || m.StartTimeout.D() != 15*time.Minute || m.StopTimeout.D() != 30*time.Second {
		t.Errorf("timeouts %v %v %v", m.IdleTimeout, m.StartTimeout, m.StopTimeout)
	}
	if c.Models["s"].Runtime != RuntimeNative {
		t.Errorf("sim runtime %s", c.Models["s"].Runtime)
	}
	if got := c.ModelPath(m); got != c.Root+"/models/llama4/scout" {
		t.Errorf("model path %s", got)
	}
	if got := c.ModelPath(c.Models["v"]); got != "/abs/v" {
		t.Errorf("abs model path %s", got)
	}
}

func TestAssignedPortsAreStable(t *testing.T) {
	src := []byte(`
models:
  a: {engine: sim, memory: 1GiB}
  b: {engine: sim, memory: 1GiB}
  c: {engine: sim, memory: 1GiB, port: 30500}
  d: {engine: llamacpp, path: /x.gguf, memory: 1GiB}
`)
	first, err := Parse("t.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]string{}
	for name, m := range first.Models {
		if o, ok := seen[m.Port]; ok {
			t.Errorf("%s and %s share port %d", name, o, m.Port)
		}
		seen[m.Port] = name
	}
	for i := 0; i < 5; i++ {
		again, _ := Parse("t.yaml", src)
		for name, m := range again.Models {
			if m.Port != first.Models[name].Port {
				t.Errorf("%s: port %d then %d", name, first.Models[name].Port, m.Port)
			}
		}
	}
	// Adding an unrelated model does not move the others.
	more, _ := Parse("t.yaml", append(src, []byte("  e: {engine: sim, memory: 1GiB}\n")...))
	for _, n := range []string{"a", "b", "d"} {
		if more.Models[n].Port != first.Models[n].Port {
			t.Errorf("%s moved from %d to %d when e was added", n, first.Models[n].Port, more.Models[n].Port)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("GANTRY_TEST_KEY", "sk-test")
	t.Setenv("GANTRY_TEST_PORT", "30123")
	c, err := Parse("t.yaml", []byte(`
auth: {api_keys: ["${env.GANTRY_TEST_KEY}"]}
models:
  a: {engine: sim, memory: 1GiB, port: "${env.GANTRY_TEST_PORT}", args: ["$${env.LITERAL}"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.APIKeys[0] != "sk-test" || c.Models["a"].Port != 30123 || c.Models["a"].Args[0] != "${env.LITERAL}" {
		t.Errorf("got keys %v port %d args %v", c.Auth.APIKeys, c.Models["a"].Port, c.Models["a"].Args)
	}
}

func TestProblemsNameLineAndPath(t *testing.T) {
	_, err := Parse("g.yaml", []byte("models:\n  scout: {engine: sim, memory: 1GiB, port: 30000}\n  qwen: {engine: sim, memory: 1GiB, port: 30000}\n"))
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatalf("want Problems, got %v", err)
	}
	want := "g.yaml:2: models.scout.port: 30000 is also used by models.qwen"
	if probs[0].String() != want {
		t.Errorf("got %q, want %q", probs[0].String(), want)
	}
}

func TestDemoIsValid(t *testing.T) {
	c := Demo()
	if len(c.Models) < 2 || c.File != "" {
		t.Fatalf("demo %+v", c)
	}
	for _, m := range c.Models {
		if m.Engine != engine.Sim {
			t.Errorf("demo model %s runs %s, not sim", m.Name, m.Engine)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	t.Setenv("GANTRY_API_KEY", "sk-example")
	c, err := Load("../../examples/gantry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Models["qwen-uncensored"].Port; p == 30001 || p != c.Slots["private"].Port || c.Resolve("default") != c.Models["scout"] {
		t.Errorf("slot port %d, default → %v", p, c.Resolve("default"))
	}
	if p := c.Models["scout"].Port; p == 30000 || c.Models["scout"].Listen != "0.0.0.0:30000" {
		t.Errorf("scout's engine port %d: the seed's address is gantry's", p)
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
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

// yamlToJSONValue turns YAML into the generic JSON value the schema checks.
func yamlToJSONValue(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSchemaAcceptsExampleAndDemo(t *testing.T) {
	s := compileSchema(t)
	ex, err := os.ReadFile("../../examples/gantry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(yamlToJSONValue(t, ex)); err != nil {
		t.Errorf("example config: %v", err)
	}
	if err := s.Validate(yamlToJSONValue(t, []byte(demoYAML))); err != nil {
		t.Errorf("demo config: %v", err)
	}
	bad := []byte("models:\n  a: {engine: sim, memroy: 1GiB}\n")
	if err := s.Validate(yamlToJSONValue(t, bad)); err == nil {
		t.Error("schema accepted an unknown key")
	}
	bad = []byte("models:\n  a: {engine: vlm}\n")
	if err := s.Validate(yamlToJSONValue(t, bad)); err == nil {
		t.Error("schema accepted an unknown engine")
	}
}

// TestSchemaCoversEveryKey keeps the schema and the Go types in step: every
// YAML key of the types is in the schema, and the schema has no others.
func TestSchemaCoversEveryKey(t *testing.T) {
	var raw map[string]any
	if err := json.Unmarshal(Schema, &raw); err != nil {
		t.Fatal(err)
	}
	defs := raw["$defs"].(map[string]any)
	props := func(obj map[string]any) []string {
		p, _ := obj["properties"].(map[string]any)
		var ks []string
		for k := range p {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	top := raw["properties"].(map[string]any)
	sub := func(key string) map[string]any { return top[key].(map[string]any) }
	addl := func(obj map[string]any) map[string]any { return obj["additionalProperties"].(map[string]any) }
	cases := []struct {
		what   string
		typ    reflect.Type
		schema []string
	}{
		{"top", reflect.TypeOf(Config{}), props(raw)},
		{"memory", reflect.TypeOf(Memory{}), props(sub("memory"))},
		{"auth", reflect.TypeOf(Auth{}), props(sub("auth"))},
		{"defaults", reflect.TypeOf(Defaults{}), props(sub("defaults"))},
		{"model", reflect.TypeOf(Model{}), props(defs["model"].(map[string]any))},
		{"engines", reflect.TypeOf(EngineSettings{}), props(addl(sub("engines")))},
		{"services", reflect.TypeOf(Service{}), props(addl(sub("services")))},
		{"slots", reflect.TypeOf(Slot{}), props(addl(sub("slots")))},
		{"profiles", reflect.TypeOf(Profile{}), props(addl(sub("profiles")))},
		{"presets", reflect.TypeOf(Preset{}), props(addl(sub("presets")))},
		{"ollama_api", reflect.TypeOf(OllamaAPI{}), props(sub("ollama_api"))},
		{"activity", reflect.TypeOf(Activity{}), props(sub("activity"))},
		{"cors", reflect.TypeOf(CORS{}), props(sub("cors"))},
		{"hub", reflect.TypeOf(Hub{}), props(sub("hub"))},
		{"auth.keys", reflect.TypeOf(Key{}), props(addl(sub("auth")["properties"].(map[string]any)["keys"].(map[string]any)))},
		{"telemetry", reflect.TypeOf(Telemetry{}), props(sub("telemetry"))},
		{"peers", reflect.TypeOf(Peer{}), props(addl(sub("peers")))},
		{"kubernetes", reflect.TypeOf(Kubernetes{}), props(sub("kubernetes"))},
		{"kubernetes.models_volume", reflect.TypeOf(KubeVolume{}), props(sub("kubernetes")["properties"].(map[string]any)["models_volume"].(map[string]any))},
		{"kubernetes.hf_cache", reflect.TypeOf(KubeVolume{}), props(sub("kubernetes")["properties"].(map[string]any)["hf_cache"].(map[string]any))},
	}
	for _, c := range cases {
		var keys []string
		for i := 0; i < c.typ.NumField(); i++ {
			tag, _, _ := strings.Cut(c.typ.Field(i).Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				keys = append(keys, tag)
			}
		}
		sort.Strings(keys)
		if !reflect.DeepEqual(keys, c.schema) {
			t.Errorf("%s: Go keys %v, schema keys %v", c.what, keys, c.schema)
		}
	}
}

// TestExplicitZeroIsKept: a zero the file writes is a choice, not "unset";
// zeros that mean nothing are refused with the key's path.
func TestExplicitZeroIsKept(t *testing.T) {
	c, err := Parse("z.yaml", []byte(`
defaults: {idle_timeout: 0s, queue_limit: 0, health_interval: 0s}
slots:
  s: {port: 30001, min_residency: 0s}
models:
  a: {engine: sim, memory: 1GiB, stop_timeout: 0s, slot: s}
  b: {engine: sim, memory: 1GiB, idle_timeout: 10m, health_failures: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Slots["s"].MinResidency; got != 0 {
		t.Errorf("min_residency 0s became %s", got)
	}
	a, b := c.Models["a"], c.Models["b"]
	if a.StopTimeout != 0 || a.IdleTimeout != 0 || a.QueueLimit != 0 || a.HealthInterval != 0 {
		t.Errorf("a: stop %s idle %s queue %d health %s", a.StopTimeout, a.IdleTimeout, a.QueueLimit, a.HealthInterval)
	}
	if b.IdleTimeout.D() != 10*time.Minute || b.HealthFailures != 0 || a.HealthFailures != 3 || a.StartTimeout.D() != 15*time.Minute {
		t.Errorf("b: idle %s health_failures %d; a: health_failures %d start %s", b.IdleTimeout, b.HealthFailures, a.HealthFailures, a.StartTimeout)
	}
	_, err = Parse("z.yaml", []byte("max_body: 0\nmemory: {total: 0}\ndefaults: {start_timeout: 0s, health_failures: -1, health_interval: -5s}\nmodels: {a: {engine: sim, memory: 1GiB}}\n"))
	for _, want := range []string{"max_body: 0B is too small", "memory.total: 0B leaves nothing", "defaults.start_timeout: 0 leaves no time", "defaults.health_failures: must not be negative", "defaults.health_interval: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

// TestNamedKeys: named keys get their defaults, their secrets are redacted
// like the lists', and they close the gateway as api_keys do.
func TestNamedKeys(t *testing.T) {
	c, err := Parse("k.yaml", []byte(`
listen: 0.0.0.0:4000
auth:
  keys:
    alice: {key: sk-alice-secret, models: [a, "b*"], rpm: 5}
    bot: {key: sk-bot-secret, priority: batch}
telemetry: {otlp_endpoint: http://127.0.0.1:4318}
models:
  a: {engine: sim, memory: 1GiB, max_concurrency: 2}
  b1: {engine: sim, memory: 1GiB}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.GatewayOpen() {
		t.Error("named keys alone leave the gateway open")
	}
	if k := c.Auth.Keys["alice"]; k.Priority != PriorityInteractive || k.RPM != 5 || k.String() != "5 rpm" {
		t.Errorf("alice: %+v (%s)", k, k)
	}
	if c.Auth.Keys["bot"].Priority != PriorityBatch {
		t.Errorf("bot: %+v", c.Auth.Keys["bot"])
	}
	if c.Telemetry.Sample != 1 {
		t.Errorf("sample %v, want the default 1", c.Telemetry.Sample)
	}
	if c.Models["a"].MaxConcurrency != 2 {
		t.Errorf("max_concurrency %d", c.Models["a"].MaxConcurrency)
	}
	if got := Redactor(c).Replace("bearer sk-alice-secret and sk-bot-secret"); got != "bearer *** and ***" {
		t.Errorf("redacted: %q", got)
	}
	if got := c.Auth.AdminToken(); got != "" {
		t.Errorf("admin token %q without any admin key", got)
	}
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{{"a", "a", true}, {"b*", "b1", true}, {"b*", "a", false}, {"qwen3:*", "qwen3:8b", true}, {"[x", "[x", true}, {"[x", "x", false}} {
		if got := MatchModel(tc.pattern, tc.name); got != tc.want {
			t.Errorf("MatchModel(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

// TestKeyThatSeesNothing: `models: []` is a key that sees no model at all
// (a missing models: sees every one); said as a warning, since no user
// means a key for nothing.
func TestKeyThatSeesNothing(t *testing.T) {
	_, probs := ParseAll("k.yaml", []byte(`
auth:
  keys:
    alice: {key: sk-alice-secret, models: []}
    bob: {key: sk-bob-secret}
models:
  a: {engine: sim, memory: 1GiB}
`))
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(all, "auth.keys.alice.models: an empty list: key alice sees no model") || strings.Contains(all, "auth.keys.bob") {
		t.Errorf("problems:\n%s", all)
	}
	if probs.Errors() != 0 {
		t.Errorf("a warning, not an error: %s", all)
	}
}

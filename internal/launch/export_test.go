package launch

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
)

func TestInContainer(t *testing.T) {
	c, err := config.Parse("t.yaml", []byte(`
root: /srv/ai
models:
  s: {engine: sim, port: 30500, memory: 1GiB, args: [--load-time, 1s]}
  simg: {engine: sim, port: 30501, memory: 1GiB, image: "gantry/sim:v1"}
  o: {engine: ollama, model: "qwen3:8b", memory: 8GiB}
  v: {engine: vllm, path: m, port: 8000, memory: 8GiB}
  cmd: {engine: command, command: [/srv/bin/server, --port, "30600"], port: 30600, memory: 1GiB, image: "me/server:v2"}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := Host{Config: c, Self: "/usr/bin/gantry"}
	if _, err := InContainer(c.Models["s"], h, engine.Resources{}); !errors.Is(err, ErrNoImage) {
		t.Errorf("sim with no image: %v, want ErrNoImage", err)
	}
	box, err := InContainer(c.Models["simg"], h, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"gantry", "sim", "--host", "0.0.0.0", "--port", "30501", "--model", "simg"}
	if !slices.Equal(box.Argv, want) || box.Image != "gantry/sim:v1" || box.GPUs != "none" {
		t.Errorf("sim in a container: %q in %s, gpus %s", box.Argv, box.Image, box.GPUs)
	}
	if c.Models["simg"].Runtime != config.RuntimeNative {
		t.Error("InContainer changed the model's runtime")
	}
	box, err = InContainer(c.Models["o"], h, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if box.Image != mustLookup(t, engine.Ollama).Container.Image || box.GPUs != "all" || box.Argv[0] != "serve" {
		t.Errorf("ollama in a container: %q in %s, gpus %s", box.Argv, box.Image, box.GPUs)
	}
	box, err = InContainer(c.Models["cmd"], h, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(box.Argv, []string{"/srv/bin/server", "--port", "30600"}) || box.Image != "me/server:v2" {
		t.Errorf("command in a container: %q in %s", box.Argv, box.Image)
	}
	box, err = InContainer(c.Models["v"], h, engine.Resources{})
	if err != nil || box.Argv[0] != "vllm" || box.Mounts[0].Target != "/model" {
		t.Errorf("vllm: %v %+v", err, box)
	}
}

func TestReadyPath(t *testing.T) {
	for _, tc := range []struct {
		m    config.Model
		want string
	}{
		{config.Model{Engine: engine.VLLM}, "/health"},
		{config.Model{Engine: engine.VLLM, Nodes: []string{"spark1", config.Local}}, ""},
		{config.Model{Engine: engine.Ollama}, "/api/version"},
		{config.Model{Engine: engine.Command, Health: "/ready"}, "/ready"},
		{config.Model{Engine: engine.Sim, Args: []string{"--flavor", "ollama"}}, "/api/version"},
		{config.Model{Engine: engine.SGLang}, "/health"},
	} {
		if got, err := ReadyPath(&tc.m); err != nil || got != tc.want {
			t.Errorf("%s %v: %q %v, want %q", tc.m.Engine, tc.m.Nodes, got, err, tc.want)
		}
	}
}

// TestNodeRankReference: a rank the runtime fills in replaces the box's
// place in nodes:, on the engine's own flag.
func TestNodeRankReference(t *testing.T) {
	m := &config.Model{Engine: engine.SGLang, Nodes: []string{"lead", config.Local, "w2"}, DistInitAddr: "$(LWS_LEADER_ADDRESS):20000"}
	m.Name, m.Path, m.Runtime = "big", "/m", config.RuntimeNative
	cfg, err := config.Parse("n.yaml", []byte("root: /srv/ai\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Build(m, Host{Config: cfg, NodeRank: "$(LWS_WORKER_INDEX)"}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--nnodes", "3", "--node-rank", "$(LWS_WORKER_INDEX)", "--dist-init-addr", "$(LWS_LEADER_ADDRESS):20000"}
	if got := strings.Join(l.Argv, " "); !strings.Contains(got, strings.Join(want, " ")) {
		t.Errorf("got %q, want %q in it", got, want)
	}
}

func mustLookup(t *testing.T, name string) *engine.Descriptor {
	t.Helper()
	d, err := engine.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

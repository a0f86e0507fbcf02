package engine

import (
	"errors"
	"slices"
	"testing"

	"github.com/gantryhq/gantry/internal/config"
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
	if _, err := InContainer(c.Models["s"], h, Resources{}); !errors.Is(err, ErrNoImage) {
		t.Errorf("sim with no image: %v, want ErrNoImage", err)
	}
	box, err := InContainer(c.Models["simg"], h, Resources{})
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
	box, err = InContainer(c.Models["o"], h, Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if box.Image != config.DefaultImages[config.EngineOllama] || box.GPUs != "all" || box.Argv[0] != "serve" {
		t.Errorf("ollama in a container: %q in %s, gpus %s", box.Argv, box.Image, box.GPUs)
	}
	box, err = InContainer(c.Models["cmd"], h, Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(box.Argv, []string{"/srv/bin/server", "--port", "30600"}) || box.Image != "me/server:v2" {
		t.Errorf("command in a container: %q in %s", box.Argv, box.Image)
	}
	box, err = InContainer(c.Models["v"], h, Resources{})
	if err != nil || box.Argv[0] != "vllm" || box.Mounts[0].Target != "/model" {
		t.Errorf("vllm: %v %+v", err, box)
	}
}

func TestReadyPath(t *testing.T) {
	for _, tc := range []struct {
		m    config.Model
		want string
	}{
		{config.Model{Engine: config.EngineVLLM}, "/health"},
		{config.Model{Engine: config.EngineVLLM, Nodes: []string{"spark1", config.Local}}, ""},
		{config.Model{Engine: config.EngineOllama}, "/api/version"},
		{config.Model{Engine: config.EngineCommand, Health: "/ready"}, "/ready"},
		{config.Model{Engine: config.EngineSim, Args: []string{"--flavor", "ollama"}}, "/api/version"},
		{config.Model{Engine: config.EngineSGLang}, "/health"},
	} {
		if got, err := ReadyPath(&tc.m); err != nil || got != tc.want {
			t.Errorf("%s %v: %q %v, want %q", tc.m.Engine, tc.m.Nodes, got, err, tc.want)
		}
	}
}

// TestNodeRankReference: a rank the runtime fills in replaces the box's
// place in nodes:, on the engine's own flag.
func TestNodeRankReference(t *testing.T) {
	m := &config.Model{Engine: config.EngineSGLang, Nodes: []string{"lead", config.Local, "w2"}, DistInitAddr: "$(LWS_LEADER_ADDRESS):20000"}
	got := nodeFlags(m, Host{NodeRank: "$(LWS_WORKER_INDEX)"})
	want := []string{"--nnodes", "3", "--node-rank", "$(LWS_WORKER_INDEX)", "--dist-init-addr", "$(LWS_LEADER_ADDRESS):20000"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

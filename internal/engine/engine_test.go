package engine_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/systemd"
)

var update = flag.Bool("update", false, "rewrite golden files")

const goldenConfig = `
root: /srv/ai
memory: {total: 128GiB, reserve: 8GiB}
defaults: {stop_timeout: 20s}
models:
  scout:
    engine: %[1]s
    runtime: %[2]s
    path: llama4/llama4-scout-17b-nvfp4
    model: llama3.2:1b
    port: 30000
    memory: 64GiB
    context: 32768
    args: [--flag with space, "semi;colon"]
    env: {HF_TOKEN: secret-value}
`

// TestGoldenArgv pins the argv of every engine × runtime: a flag that
// changes is a decision to be seen in review, not drift.
func TestGoldenArgv(t *testing.T) {
	for _, eng := range engine.Names() {
		for _, rt := range []string{config.RuntimeNative, config.RuntimeDocker} {
			if rt == config.RuntimeDocker && (eng == engine.Command || eng == engine.Sim) {
				continue // validation refuses these; nothing to pin
			}
			t.Run(eng+"-"+rt, func(t *testing.T) {
				src := fmt.Sprintf(goldenConfig, eng, rt)
				if eng == engine.Command {
					src = strings.Replace(src, "    path:", "    command: [/opt/bin/my server, --port, \"30000\"]\n    path:", 1)
				}
				if eng == engine.Ollama {
					src = strings.Replace(src, "    port: 30000\n", "", 1)
				}
				c, err := config.Parse("golden.yaml", []byte(src))
				if err != nil {
					t.Fatal(err)
				}
				l, err := launch.Build(c.Models["scout"], launch.Host{Config: c, Self: "/usr/bin/gantry"},
					engine.Resources{MemoryBytes: 64 << 30, Fraction: "0.50", Context: 32768, ExtraArgs: []string{"--added-by-plan"},
						KVCacheBytes: 8 << 30, MaxTotalTokens: 32768, Env: []string{"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True", "HF_TOKEN=planned-loses"}})
				if err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				fmt.Fprintf(&b, "argv:\n")
				for _, a := range l.Argv {
					fmt.Fprintf(&b, "  %q\n", a)
				}
				fmt.Fprintf(&b, "env: %q\ncontainer: %q\nprestart: %q\nstop: %q\nbase: %s\nmetrics: %s\n",
					l.Env, l.DockerName, systemd.PreStart(l), systemd.Stop(l), l.BaseURL, l.MetricsURL)
				if x := l.Container; x != nil {
					fmt.Fprintf(&b, "box:\n  name: %s\n  image: %s\n  argv: %q\n  env: %q\n  mounts: %+v\n  port: %d\n  gpus: %s\n  shm: %d ipc host: %v\n  pull: %s\n  stop timeout: %s\n",
						x.Name, x.Image, x.Argv, x.Env, x.Mounts, x.Port, x.GPUs, x.ShmSize, x.IPCHost, x.Pull, x.StopTimeout)
				}
				golden := filepath.Join("testdata", "golden", eng+"-"+rt+".txt")
				if *update {
					if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/engine -update)", err)
				}
				if got := b.String(); got != string(want) {
					t.Errorf("argv changed; got:\n%s\nwant:\n%s", got, want)
				}
				for _, a := range l.Argv {
					if strings.Contains(a, "secret-value") {
						t.Errorf("a secret env value is in argv: %q", a)
					}
					if strings.HasSuffix(a, ":latest") {
						t.Errorf("unpinned image %q", a)
					}
				}
			})
		}
	}
}

func TestExplicitMemoryFlagWins(t *testing.T) {
	c, err := config.Parse("x.yaml", []byte(`
models:
  v: {engine: vllm, runtime: native, path: /m, memory: 10GiB, args: [--gpu-memory-utilization=0.5]}
`))
	if err != nil {
		t.Fatal(err)
	}
	l, err := launch.Build(c.Models["v"], launch.Host{Config: c}, engine.Resources{Fraction: "0.10"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range l.Argv {
		if strings.HasPrefix(a, "--gpu-memory-utilization") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("want the user's flag only, got %q", l.Argv)
	}
}

func TestProbeHealth(t *testing.T) {
	state := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(state)
		fmt.Fprint(w, `{"error":{"message":"Loading model"}}`)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	health := engine.Health{Path: "/health", NotReady: "loading"}
	r := engine.Probe(ctx, srv.Client(), srv.URL, health)
	if r.Ready || r.Phase != "loading" || !strings.Contains(r.Detail, "Loading model") {
		t.Errorf("503: got %+v", r)
	}
	state = http.StatusOK
	if r := engine.Probe(ctx, srv.Client(), srv.URL, health); !r.Ready {
		t.Errorf("200: got %+v", r)
	}
	state = http.StatusInternalServerError
	if r := engine.Probe(ctx, srv.Client(), srv.URL, health); r.Ready || r.Phase != "unhealthy" {
		t.Errorf("500: got %+v", r)
	}
	srv.Close()
	if r := engine.Probe(ctx, http.DefaultClient, srv.URL, health); r.Ready || r.Phase != "not listening" {
		t.Errorf("closed: got %+v", r)
	}
}

// TestNodeFlags pins each engine's own multi-node flags for both ranks of
// a two-box group (sources cited at nodeFlags).
func TestNodeFlags(t *testing.T) {
	cases := []struct {
		engine string
		nodes  string
		want   string
	}{
		{"sglang", "[local, b]", "--nnodes 2 --node-rank 0 --dist-init-addr 10.0.0.1:29500"},
		{"sglang", "[b, local]", "--nnodes 2 --node-rank 1 --dist-init-addr 10.0.0.1:29500"},
		{"vllm", "[local, b]", "--nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --master-port 29500"},
		{"vllm", "[b, local]", "--nnodes 2 --node-rank 1 --master-addr 10.0.0.1 --master-port 29500 --headless"},
		{"sim", "[b, local]", "--nnodes 2 --node-rank 1 --dist-init-addr 10.0.0.1:29500"},
	}
	for _, c := range cases {
		cfg, err := config.Parse("n.yaml", []byte(fmt.Sprintf(`
peers: {b: {url: "http://10.0.0.2:4000"}}
models:
  big: {engine: %s, runtime: native, path: /m, memory: 10GiB, port: 30000, nodes: %s, dist_init_addr: "10.0.0.1:29500"}
`, c.engine, c.nodes)))
		if err != nil {
			t.Fatal(err)
		}
		l, err := launch.Build(cfg.Models["big"], launch.Host{Config: cfg}, engine.Resources{})
		if err != nil {
			t.Fatal(err)
		}
		if argv := strings.Join(l.Argv, " "); !strings.Contains(argv, c.want) {
			t.Errorf("%s %s: argv %s lacks %q", c.engine, c.nodes, argv, c.want)
		}
	}
	// A headless vLLM rank serves no HTTP: running is its readiness.
	cfg, _ := config.Parse("n.yaml", []byte(`
peers: {b: {url: "http://10.0.0.2:4000"}}
models:
  big: {engine: vllm, runtime: native, path: /m, memory: 10GiB, nodes: [b, local], dist_init_addr: "10.0.0.1:29500"}
`))
	health, err := launch.Health(cfg.Models["big"])
	if err != nil {
		t.Fatal(err)
	}
	if rd := engine.Probe(context.Background(), http.DefaultClient, "http://127.0.0.1:1", health); !rd.Ready {
		t.Errorf("a headless vLLM rank is not ready: %+v", rd)
	}
}

// TestHFCacheMount: a model whose path is a snapshot of the Hugging Face
// cache runs in its container with the repository's folder mounted (its
// files link into blobs/) and the snapshot as its path inside.
func TestHFCacheMount(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	const commit = "0123456789abcdef0123456789abcdef01234567"
	repo := filepath.Join(cache, "models--Qwen--Qwen3-8B")
	os.MkdirAll(filepath.Join(repo, "snapshots", commit), 0o755)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644)
	os.WriteFile(filepath.Join(repo, "snapshots", commit, "m.gguf"), nil, 0o644)
	for eng, p := range map[string]string{"vllm": "hf:Qwen/Qwen3-8B", "llamacpp": "hf:Qwen/Qwen3-8B@main/m.gguf"} {
		c, err := config.Parse("hf.yaml", []byte(fmt.Sprintf("models:\n  q: {engine: %s, runtime: docker, path: %q, port: 30000, memory: 8GiB}\n", eng, p)))
		if err != nil {
			t.Fatal(err)
		}
		l, err := launch.Build(c.Models["q"], launch.Host{Config: c}, engine.Resources{})
		if err != nil {
			t.Fatal(err)
		}
		want := "/model/snapshots/" + commit
		if eng == "llamacpp" {
			want += "/m.gguf"
		}
		mounts := fmt.Sprint(l.Container.Mounts)
		if !strings.Contains(mounts, repo) || !strings.Contains(strings.Join(l.Container.Argv, " "), want) {
			t.Errorf("%s: mounts %s, argv %q (want %s inside)", eng, mounts, l.Container.Argv, want)
		}
	}
}

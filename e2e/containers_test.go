package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// containerDaemon starts gantry against the test Docker daemon with
// models of yaml (ROOT and LISTEN replaced); the model folder "m" exists.
func containerDaemon(t *testing.T, models string) *daemon {
	t.Helper()
	host := dockerHost(t)
	t.Setenv("DOCKER_HOST", host) // gantry serve inherits the environment
	d := startDaemonWith(t, func(home string) string {
		os.MkdirAll(filepath.Join(home, "ai", "models", "m"), 0o755)
		return "listen: LISTEN\nroot: ROOT\nmemory: {total: 64GiB, reserve: 4GiB}\nmodels:\n" + models
	})
	t.Cleanup(func() {
		d.stop()
		// gantry's stop leaves no container of its own.
		if out := docker(t, "ps", "-a", "-q", "--filter", "label=gantry.root="+filepath.Join(d.home, "ai")); out != "" {
			t.Errorf("containers left after gantry stopped: %s", out)
			docker(t, append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
	})
	return d
}

// TestContainerImageContracts: each image's launch contract — the
// vllm/vllm-openai entrypoint (vllm serve), NGC's wrapper, SGLang's none,
// llama.cpp's server entrypoint — gets the command that fits it, started
// through the Engine API with a GPU device request, published on
// 127.0.0.1, and serves a chat through gantry. The stand-in engines
// refuse what the real ones refuse ("vllm serve vllm serve …").
func TestContainerImageContracts(t *testing.T) {
	for _, im := range []imageSpec{vllmOpenAI, ngcVLLM, sglangImage, llamaImage} {
		loadImage(t, im)
	}
	d := containerDaemon(t, `
  vo: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB}
  ngc: {engine: vllm, runtime: docker, image: "`+ngcVLLM.tag+`", path: m, memory: 2GiB}
  sg: {engine: sglang, runtime: docker, image: "`+sglangImage.tag+`", path: m, memory: 2GiB}
  lc: {engine: llamacpp, runtime: docker, image: "`+llamaImage.tag+`", path: m, memory: 2GiB}
`)
	c := d.oai("")
	for _, m := range []string{"vo", "ngc", "sg", "lc"} {
		if _, err := c.Chat.Completions.New(context.Background(), chatParams(m, "hi")); err != nil {
			t.Errorf("%s: %v\n%s", m, err, d.logs(m))
			continue
		}
		ps := docker(t, "ps", "--filter", "label=gantry.model="+m, "--format", "{{.Names}} {{.Ports}}")
		if !strings.HasPrefix(ps, "gantry-"+m+" 127.0.0.1:") {
			t.Errorf("%s's container: %q (want gantry-%s published on 127.0.0.1 only)", m, ps, m)
		}
	}
	logs := d.logs("vo")
	if !strings.Contains(logs, `standin: vllm ["serve" "/model"`) {
		t.Errorf("vllm/vllm-openai got another command:\n%s", logs)
	}
	if logs := d.logs("ngc"); !strings.Contains(logs, "== NVIDIA CUDA (stand-in entrypoint) ==") || !strings.Contains(logs, `standin: vllm ["serve"`) {
		t.Errorf("the NGC wrapper did not run the command:\n%s", logs)
	}
}

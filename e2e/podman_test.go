package e2e

import (
	"os"
	"strings"
	"testing"
)

// TestContainersOnPodman runs gantry's containers on Podman's
// Docker-compatible API (the Podman service ./test.sh starts): a container
// without GPUs starts, serves and is gone after gantry's stop; one that
// asks for GPUs is refused with what to do, since that API drops GPU
// requests (the container would run without one).
func TestContainersOnPodman(t *testing.T) {
	host := os.Getenv("GANTRY_TEST_PODMAN_HOST")
	if host == "" {
		t.Fatal("no Podman service: run ./test.sh, which starts one and sets GANTRY_TEST_PODMAN_HOST")
	}
	loadImageAt(t, host, vllmOpenAI) // and the rest of the test talks to Podman
	d := containerDaemon(t, `
  gpu: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB}
  cpu: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, gpus: none}
`)
	out, code := d.gantry("start", "gpu")
	t.Logf("gantry start gpu on Podman: %s", out)
	if code == 0 || !strings.Contains(out, "Podman") || !strings.Contains(out, "gpus: none") {
		t.Errorf("a GPU container on Podman: exit %d\n%s", code, out)
	}
	resp, body := ask(t, d.url, "", "cpu", false)
	if resp.StatusCode != 200 || !strings.Contains(body, `"choices"`) {
		t.Errorf("a chat with the container on Podman: %d %s\n%s", resp.StatusCode, body, d.logs("cpu"))
	}
	if ps := docker(t, "ps", "--filter", "label=gantry.model=cpu", "--format", "{{.Image}} {{.Ports}}"); !strings.Contains(ps, "127.0.0.1:") {
		t.Errorf("the container on Podman: %q", ps)
	}
	// containerDaemon's cleanup: gantry's stop leaves no container on Podman.
}

package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bareDockerd starts a second dockerd without the NVIDIA hook — as on a
// box whose daemon has no NVIDIA Container Toolkit — in a network
// namespace of its own (unshare -n: its bridge and iptables rules must not
// touch the first daemon's), with extra flags, and returns its DOCKER_HOST.
func bareDockerd(t *testing.T, extra ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("dockerd needs root: ./test.sh runs the suite as root")
	}
	dir, err := os.MkdirTemp("/run", "gantry-bare-docker-") // short: unix socket paths are bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	host := "unix://" + filepath.Join(dir, "d.sock")
	args := append([]string{"-c", `ip link set lo up && exec dockerd "$@"`, "dockerd",
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "x"),
		"--host", host, "--pidfile", filepath.Join(dir, "d.pid")}, extra...)
	cmd := exec.Command("unshare", append([]string{"--net", "sh"}, args...)...)
	log, _ := os.Create(filepath.Join(t.TempDir(), "dockerd.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c := exec.Command("docker", "info")
		c.Env = append(os.Environ(), "DOCKER_HOST="+host)
		if c.Run() == nil {
			return host
		}
	}
	b, _ := os.ReadFile(log.Name())
	t.Fatalf("the second dockerd did not start:\n%s", b)
	return ""
}

// TestContainerWithoutGPURuntime: a daemon without the NVIDIA runtime
// cannot give a container a GPU: the start says so and what to install,
// in gantry start, ps and the diagnosis; gpus: none starts.
func TestContainerWithoutGPURuntime(t *testing.T) {
	host := bareDockerd(t)
	loadImageAt(t, host, vllmOpenAI)
	d := containerDaemon(t, `
  g: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB}
  cpu: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, gpus: none, start_timeout: 5s}
`)
	out, code := d.gantry("start", "g")
	if code == 0 || !strings.Contains(out, "docker cannot give the container a GPU") || !strings.Contains(out, "nvidia-ctk runtime configure") {
		t.Errorf("start on a daemon without the NVIDIA runtime: exit %d\n%s", code, out)
	}
	ps, _ := d.gantry("ps")
	if !strings.Contains(ps, "NVIDIA") {
		t.Errorf("ps does not say why:\n%s", ps)
	}
	// In its own network namespace the stand-in cannot be reached, but its
	// container is created and started: the GPU request was the only problem.
	out, _ = d.gantry("start", "cpu")
	if strings.Contains(out, "GPU") {
		t.Errorf("gpus: none still asked for a GPU:\n%s", out)
	}
}

// TestContainerDaemonDown: with the daemon gone, a request for a
// container model is answered at once with the reason naming the daemon
// (no hang), and ps says it too.
func TestContainerDaemonDown(t *testing.T) {
	d := containerDaemonAt(t, "unix:///run/gantry-test-no-such-docker.sock", `
  vo: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB}
`)
	began := time.Now()
	resp, err := http.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"vo","messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "the Docker daemon does not answer at unix:///run/gantry-test-no-such-docker.sock") {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the refusal took %s", took)
	}
	ps, _ := d.gantry("ps")
	if !strings.Contains(ps, "Docker daemon does not answer") {
		t.Errorf("ps:\n%s", ps)
	}
}

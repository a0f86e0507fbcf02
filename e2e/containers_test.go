package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// containerDaemon starts gantry against the test Docker daemon with
// models of yaml (ROOT and LISTEN replaced); the model folder "m" exists,
// and each prepare runs on the models folder before gantry starts.
func containerDaemon(t *testing.T, models string, prepare ...func(models string)) *daemon {
	t.Helper()
	return containerDaemonAt(t, dockerHost(t), models, prepare...)
}

// containerDaemonAt is containerDaemon with gantry's DOCKER_HOST set to
// host (a daemon that is down, for one); what it leaves behind is looked
// for on the test daemon, which answers.
func containerDaemonAt(t *testing.T, host, models string, prepare ...func(models string)) *daemon {
	t.Helper()
	if os.Getenv("GANTRY_TEST_ON_PODMAN") == "1" {
		// Podman's API drops GPU requests, and gantry refuses them there
		// (TestContainersOnPodman): the container tests run there without.
		models = strings.ReplaceAll(models, "runtime: docker,", "runtime: docker, gpus: none,")
	}
	t.Setenv("DOCKER_HOST", host) // gantry serve inherits the environment
	d := startDaemonWith(t, func(home string) string {
		os.MkdirAll(filepath.Join(home, "ai", "models", "m"), 0o755)
		for _, p := range prepare {
			p(filepath.Join(home, "ai", "models"))
		}
		return "listen: LISTEN\nroot: ROOT\nmemory: {total: 64GiB, reserve: 4GiB}\nmodels:\n" + models
	})
	t.Cleanup(func() {
		d.stop()
		// gantry's stop leaves no container of its own.
		left, err := containersOfRoot(dockerHost(t), filepath.Join(d.home, "ai"))
		if err != nil {
			t.Errorf("no check for containers left after gantry stopped: %v", err)
		} else if left != "" {
			t.Errorf("containers left after gantry stopped: %s", left)
			docker(t, append([]string{"rm", "-f"}, strings.Fields(left)...)...)
		}
	})
	return d
}

// containersOfRoot lists the IDs of the containers, running or not, that
// the gantry of root made on the daemon at host; the docker CLI's failure
// is an error, never "none".
func containersOfRoot(host, root string) (string, error) {
	cmd := exec.Command("docker", "ps", "-a", "-q", "--filter", "label=gantry.root="+root)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("docker ps at %s: %v: %s", host, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(b)), nil
}

// TestContainerImageContracts: each image's launch contract — the
// vllm/vllm-openai entrypoint (vllm serve), NGC's wrapper, SGLang's none,
// llama.cpp's server entrypoint — gets the command that fits it, started
// through the Engine API with a GPU device request (its
// HostConfig.DeviceRequests inspected), published on 127.0.0.1, and serves
// a chat through gantry. The stand-in engines
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
		// gpus: all (the default) is Docker's --gpus all: one request for
		// every device with the gpu capability. On Podman the models run
		// with gpus: none, and the container has none.
		want := `[{"Driver":"","Count":-1,"DeviceIDs":null,"Capabilities":[["gpu"]],"Options":null}]`
		if os.Getenv("GANTRY_TEST_ON_PODMAN") == "1" {
			want = "null"
		}
		if got := docker(t, "inspect", "--format", "{{json .HostConfig.DeviceRequests}}", "gantry-"+m); got != want {
			t.Errorf("%s's container's HostConfig.DeviceRequests: %s, want %s", m, got, want)
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

// containerOf is the ID of the model's container, "" when none runs.
func containerOf(t *testing.T, model string) string {
	t.Helper()
	return docker(t, "ps", "-q", "--no-trunc", "--filter", "label=gantry.model="+model)
}

// TestContainerAdoptedAfterKill9: gantry killed with -9 leaves its engine's
// container running; the next gantry finds it by its labels and adopts it
// (same container, no reload). A container launched with another config
// is removed instead, without "No such container" noise.
func TestContainerAdoptedAfterKill9(t *testing.T) {
	loadImage(t, vllmOpenAI)
	d := containerDaemon(t, `
  vo: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB}
`)
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("vo", "hi")); err != nil {
		t.Fatal(err)
	}
	before := containerOf(t, "vo")
	d.cmd.Process.Kill()
	<-d.done
	if containerOf(t, "vo") != before {
		t.Fatal("the container did not outlive gantry's kill -9")
	}
	d2 := d.again()
	d2.waitState("vo", "ready", 20*time.Second)
	st := d2.status().Model("vo")
	if !st.Adopted || containerOf(t, "vo") != before {
		t.Errorf("not adopted: %+v (container %s, was %s)", st, containerOf(t, "vo"), before)
	}
	c2 := d2.oai("")
	if _, err := c2.Chat.Completions.New(context.Background(), chatParams("vo", "again")); err != nil {
		t.Fatal(err)
	}

	// Killed again, and the config changes: the old container is not adopted but removed.
	d2.cmd.Process.Kill()
	<-d2.done
	cfg, _ := os.ReadFile(d.config)
	os.WriteFile(d.config, []byte(strings.Replace(string(cfg), "memory: 2GiB", "memory: 3GiB", 1)), 0o644)
	d3 := d2.again()
	for deadline := time.Now().Add(20 * time.Second); containerOf(t, "vo") != "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if id := containerOf(t, "vo"); id != "" {
		t.Errorf("the leftover container %s of a changed config is still there", id)
	}
	c3 := d3.oai("")
	if _, err := c3.Chat.Completions.New(context.Background(), chatParams("vo", "third")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d3.logs("vo"), "No such container") {
		t.Errorf("No such container noise:\n%s", d3.logs("vo"))
	}
}

// TestContainerStartFailures: each failure said plainly, before or after
// the container runs: the image is not present (gantry pull), it is built
// for another architecture, and the engine refuses a flag — here the
// stand-in's imitation of vLLM's argparse line (TestRealVLLM has the real
// vLLM's own words).
func TestContainerStartFailures(t *testing.T) {
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	foreign := vllmOpenAI
	foreign.tag, foreign.arch = "gantry-test/vllm-openai:v0.11.0-"+other, other
	loadImage(t, vllmOpenAI)
	loadImage(t, foreign)
	d := containerDaemon(t, `
  missing: {engine: vllm, runtime: docker, image: "gantry-test/not-there:v1", path: m, memory: 2GiB}
  foreign: {engine: vllm, runtime: docker, image: "`+foreign.tag+`", path: m, memory: 2GiB}
  badflag: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, args: [--no-such-flag]}
`)
	for model, want := range map[string]string{
		"missing": "image gantry-test/not-there:v1 is not present: run gantry pull",
		"foreign": "is built for linux/" + other + ", this machine is " + runtime.GOARCH,
		"badflag": "vllm: error: unrecognized arguments: --no-such-flag",
	} {
		out, code := d.gantry("start", model)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, want %q in:\n%s", model, code, want, out)
		}
	}
	if strings.Contains(d.logs("badflag"), "docker run --help") {
		t.Error("the docker CLI's help line became the engine's last line")
	}
}

// TestContainerKilledMidStream: `docker kill` of an always-on model's
// container during a stream ends the stream with an error event, not a
// hang; gantry sees the exit at once and starts a new container.
func TestContainerKilledMidStream(t *testing.T) {
	loadImage(t, vllmOpenAI)
	d := containerDaemon(t, `
  vo: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, mode: always-on, env: {STANDIN_ITL: 300ms}}
`)
	d.waitState("vo", "ready", 30*time.Second)
	first := containerOf(t, "vo")
	resp, err := http.Post(d.url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"vo","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	docker(t, "kill", first)
	rest, _ := io.ReadAll(rd)
	if !strings.Contains(string(rest), `"code":"upstream_error"`) {
		t.Errorf("the stream did not end with an error event:\n%s", rest)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if id := containerOf(t, "vo"); id != "" && id != first {
			if st := d.status().Model("vo"); st.State == "ready" {
				return
			}
		}
	}
	t.Fatalf("no new container after the kill: %+v\n%s", d.status().Model("vo"), d.logs("vo"))
}

// TestContainerAdoptedWhileLoading: gantry killed with -9 while a
// container loads; the next gantry adopts the load (the same container,
// still loading) and serves when it is ready — the load is not thrown away.
func TestContainerAdoptedWhileLoading(t *testing.T) {
	loadImage(t, vllmOpenAI)
	d := containerDaemon(t, `
  vo: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, env: {STANDIN_LOAD_TIME: 6s}}
`)
	go d.gantry("start", "vo")
	var id string
	for deadline := time.Now().Add(20 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		id = containerOf(t, "vo")
	}
	if id == "" {
		t.Fatal("no container started")
	}
	d.cmd.Process.Kill()
	<-d.done
	d2 := d.again()
	st := d2.status().Model("vo")
	if st.State != "starting" || !st.Adopted && !strings.Contains(st.Reason, "adopted") {
		t.Errorf("after the restart: %+v", st)
	}
	d2.waitState("vo", "ready", 30*time.Second)
	if got := containerOf(t, "vo"); got != id {
		t.Errorf("the load was thrown away: container %s, was %s", got, id)
	}
	c := d2.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("vo", "hi")); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/engine"
)

const testImage = "gantry-test/vllm-openai:v0.11.0"

func init() {
	addSection(section{id: "containers", order: 80, title: "Containers: what a container adds to a start, and what gantry adds to the container's",
		about: `An engine that is ready as soon as it listens — the stand-in of the ` + "`vllm/vllm-openai`" + ` test image that ` +
			`the e2e container tests load into the Docker daemon at ` + "`DOCKER_HOST`" + ` — started through gantry ` +
			"(admin API, `?wait=1`: the image inspected for its contract, the container created with its labels, GPU request and " +
			"127.0.0.1 port, started, its output followed, its port probed), alternating with `gantry sim` natively; then the same " +
			"container through the Engine API alone, with the same client and nothing of gantry's around it (create, start, until " +
			"its port answers `/health`): the daemon's own share. Left out of a run whose machine has no such daemon and image."})
	register(phase{name: "container", section: "containers", order: 100,
		needs: func(*env) error {
			if os.Getenv("DOCKER_HOST") == "" {
				return fmt.Errorf("DOCKER_HOST is not set (the phase needs a Docker daemon with the e2e test image %s)", testImage)
			}
			check := exec.Command("docker", "image", "inspect", testImage)
			if out, err := check.CombinedOutput(); err != nil {
				return fmt.Errorf("the image %s is not on %s (the e2e container tests load it): %v %s", testImage, os.Getenv("DOCKER_HOST"), err, out)
			}
			return nil
		},
		run: func(e *env) error { return containerStarts(e.bin, e.dir, os.Getenv("DOCKER_HOST"), 10) }})
}

// containerStarts measures what running an engine as a container adds to
// its start: two engines that are ready as soon as they listen — the
// stand-in of the suite's vllm/vllm-openai test image as a container on the
// Docker daemon at dockerHost (the image e2e's container tests load;
// inspect, create, start, publish, follow, probe) and gantry sim natively —
// each started and stopped n times, alternating, through the admin API
// (start answers when ready); then the container alone on the Engine API.
func containerStarts(bin, dir, dockerHost string, n int) error {
	image := testImage
	listen := fmt.Sprintf("127.0.0.1:%d", freePort())
	models := filepath.Join(dir, "box", "models")
	os.MkdirAll(filepath.Join(models, "m"), 0o755)
	cfg := fmt.Sprintf(`listen: %s
root: %s
memory: {total: 8GiB, reserve: 0GiB}
activity: {keep_days: 0}
models:
  box: {engine: vllm, runtime: docker, image: %q, path: m, memory: 1GiB, port: %d}
  native: {engine: sim, memory: 1GiB, args: [--flavor, vllm]}
`, listen, filepath.Join(dir, "box"), image, freePort())
	path := filepath.Join(dir, "box.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	_, stop, err := serve(bin, path, listen, []string{"DOCKER_HOST=" + dockerHost})
	if err != nil {
		return err
	}
	defer stop()
	gw := "http://" + listen
	times := map[string][]time.Duration{}
	for i := 0; i < n; i++ {
		order := []string{"box", "native"}
		if i%2 == 1 {
			order = []string{"native", "box"}
		}
		for _, m := range order {
			t0 := time.Now()
			if err := admin("POST", gw+"/api/models/"+m+"/start?wait=1", ""); err != nil {
				return err
			}
			times[m] = append(times[m], time.Since(t0))
			if err := admin("POST", gw+"/api/models/"+m+"/stop", ""); err != nil {
				return err
			}
		}
	}
	direct, err := directStarts(dockerHost, image, filepath.Join(models, "m"), n)
	if err != nil {
		return err
	}
	b, nat := pct(times["box"], 50), pct(times["native"], 50)
	record(fmt.Sprintf("the same container started on the Engine API alone (create, start, port answers; %d starts) p50", n),
		fmt.Sprintf("%.0f ms; through gantry %.0f ms (gantry's added: %+.0f ms)", ms(pct(direct, 50)), ms(b), ms(b-pct(direct, 50))), "", nil)
	record(fmt.Sprintf("start to ready of an engine ready at once: container / native (%d starts each) p50", n),
		fmt.Sprintf("%.0f / %.0f ms (+%.0f ms)", ms(b), ms(nat), ms(b-nat)), "", nil)
	record("start to ready, container / native, max", fmt.Sprintf("%.0f / %.0f ms", ms(pct(times["box"], 100)), ms(pct(times["native"], 100))), "", nil)
	return nil
}

// directStarts starts the same container as gantry does — through the
// same Engine API client, fitted to the image's entrypoint, published on
// 127.0.0.1 — with nothing of gantry's around it, and times each from the
// create to its port answering /health: the daemon's own share of a start.
func directStarts(dockerHost, image, modelDir string, n int) ([]time.Duration, error) {
	os.Setenv("DOCKER_HOST", dockerHost)
	c, err := container.New()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var ds []time.Duration
	for i := 0; i < n; i++ {
		port := freePort()
		spec := &engine.ContainerSpec{Name: fmt.Sprintf("gantry-bench-direct-%d", i), Image: image, Port: port, GPUs: "all", IPCHost: true,
			Argv:   []string{"vllm", "serve", "/model", "--host", "0.0.0.0", "--port", strconv.Itoa(port), "--served-model-name", "box"},
			Mounts: []engine.Mount{{Source: modelDir, Target: "/model", ReadOnly: true}}}
		ctx := context.Background()
		t0 := time.Now()
		st, err := c.Start(ctx, spec, map[string]string{"gantry.bench": "direct"}, nil)
		if err != nil {
			return nil, err
		}
		if err := waitOK(fmt.Sprintf("http://127.0.0.1:%d/health", port), 20*time.Second); err != nil {
			c.Remove(ctx, st.ID)
			return nil, err
		}
		ds = append(ds, time.Since(t0))
		c.Stop(ctx, st.ID, time.Second)
		c.Remove(ctx, st.ID)
	}
	return ds, nil
}

package e2e

import (
	"testing"
	"time"
)

// TestFaultContainerKilled: `docker kill` of an always-on model's
// container while clients stream from it; gantry sees the exit on the
// Engine API, in-flight streams end with an error event, and a new
// container serves the next requests.
func TestFaultContainerKilled(t *testing.T) {
	loadImage(t, vllmOpenAI)
	d := containerDaemon(t, `
  vo: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, mode: always-on, env: {STANDIN_ITL: 20ms}}
`)
	d.waitState("vo", "ready", 30*time.Second)
	ta := newTally("docker kill of an always-on engine's container under load (the exit seen on the Engine API, a new container started)")
	stop := make(chan struct{})
	wg := ta.load(d.url, 6, true, func() string { return "vo" }, stop)
	waitCompleted(ta, 20, 30*time.Second)
	first := containerOf(t, "vo")
	docker(t, "kill", first)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if id := containerOf(t, "vo"); id != "" && id != first && d.status().Model("vo").State == "ready" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := ta.completed.Load()
	waitCompletedAfter(ta, before+20, 30*time.Second)
	close(stop)
	wg.Wait()
	record(t, ta)
	if ta.completed.Load() < before+20 {
		t.Errorf("the new container served %d requests, want 20: %+v", ta.completed.Load()-before, d.status().Model("vo"))
	}
}

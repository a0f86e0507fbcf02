package e2e

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// streamingContainer starts gantry with vo, an always-on container, and
// six clients streaming from it; it returns once 20 have completed. finish
// waits for 20 more (after the fault and the recovery), stops the clients,
// records the row and returns how many completed after the fault.
func streamingContainer(t *testing.T, row string) (d *daemon, ta *tally, finish func() int64) {
	t.Helper()
	loadImage(t, vllmOpenAI)
	d = containerDaemon(t, `
  vo: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, mode: always-on, env: {STANDIN_ITL: 20ms}}
`)
	d.waitState("vo", "ready", 30*time.Second)
	ta = newTally(row)
	t.Cleanup(ta.stopClients) // when the test fails before finish
	stop := make(chan struct{})
	wg := ta.load(d.url, 6, true, func() string { return "vo" }, stop)
	waitCompleted(t, ta, 20, 30*time.Second)
	return d, ta, func() int64 {
		before := ta.completed.Load()
		waitCompleted(t, ta, before+20, 30*time.Second)
		close(stop)
		wg.Wait()
		record(t, ta)
		return ta.completed.Load() - before
	}
}

// TestFaultContainerKilled: `docker kill` of an always-on model's
// container while clients stream from it; gantry sees the exit on the
// Engine API, in-flight streams end with an error event, and a new
// container serves the next requests.
func TestFaultContainerKilled(t *testing.T) {
	d, ta, finish := streamingContainer(t, "docker kill of an always-on engine's container under load (the exit seen on the Engine API, a new container started)")
	first := containerOf(t, "vo")
	if n := d.status().Model("vo").Inflight; n == 0 {
		t.Fatalf("no stream in flight to be cut by the kill")
	}
	docker(t, "kill", first)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if id := containerOf(t, "vo"); id != "" && id != first && d.status().Model("vo").State == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new container ready within 60 s of the kill: %+v", d.status().Model("vo"))
		}
	}
	if n := ta.count("refused: stream ended with an error event"); n == 0 {
		t.Errorf("no in-flight stream ended with an error event: %v", ta.why)
	}
	if served := finish(); served < 20 {
		t.Errorf("the new container served %d requests, want 20: %+v", served, d.status().Model("vo"))
	}
}

// TestFaultDockerdRestarted: the Docker daemon stops under load (its
// containers end with it: gantry sets no restart policy) and comes back;
// meanwhile requests are refused with a documented error naming the
// daemon, and gantry starts the always-on model again once it answers.
func TestFaultDockerdRestarted(t *testing.T) {
	start, pidfile := os.Getenv("GANTRY_TEST_DOCKERD_START"), os.Getenv("GANTRY_TEST_DOCKERD_PID")
	if start == "" || pidfile == "" {
		t.Fatal("no restartable test Docker daemon: run ./test.sh, which starts dockerd and sets GANTRY_TEST_DOCKERD_START and GANTRY_TEST_DOCKERD_PID")
	}
	d, ta, finish := streamingContainer(t, "the Docker daemon stopped under load and started again (its containers end with it; gantry starts a new one when it answers)")

	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	restarted := false
	t.Cleanup(func() { // the rest of the suite needs the daemon
		if !restarted {
			startDockerd(t, start)
		}
	})
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); alive(pid) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	waitRefused(t, ta, 10, 20*time.Second)
	if ms := d.status().Model("vo"); ms.State == "ready" {
		t.Errorf("vo is ready with the daemon down: %+v", ms)
	}
	// Refused in words that name the daemon (503 model_unavailable).
	for deadline := time.Now().Add(20 * time.Second); ta.said("model_unavailable", "the Docker daemon does not answer") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal named the Docker daemon within 20 s; they said:\n%s", ta.wordsOf())
		}
	}
	startDockerd(t, start)
	restarted = true
	d.waitState("vo", "ready", 90*time.Second)
	if served := finish(); served < 20 {
		t.Errorf("after the daemon came back, %d requests completed, want 20", served)
	}
}

// startDockerd runs the test daemon's start script, detached (it outlives
// the test), and waits until the daemon answers.
func startDockerd(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command(script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c := exec.Command("docker", "info")
		c.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost(t))
		if c.Run() == nil {
			return
		}
	}
	t.Fatal("the test Docker daemon did not come back within 60s")
}

// TestFaultGantryKilledWithContainers: kill -9 of gantry while its
// always-on container loads, and again while clients stream from it; each
// next gantry adopts the same container (the load is not thrown away) and
// serves. Requests in flight when gantry dies lose their connection — the
// one refusal that is not an HTTP answer, as for native engines.
func TestFaultGantryKilledWithContainers(t *testing.T) {
	loadImage(t, vllmOpenAI)
	d := containerDaemon(t, `
  vo: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, mode: always-on, env: {STANDIN_ITL: 20ms, STANDIN_LOAD_TIME: 3s}}
`)
	ta := newTally("kill -9 of gantry while its container loads, and again during streams, then restart (the container adopted each time)")
	ta.allowConnErrors = true
	d.waitState("vo", "starting", 20*time.Second)
	var first string
	for deadline := time.Now().Add(20 * time.Second); first == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		first = containerOf(t, "vo")
	}
	if first == "" {
		t.Fatal("no container of vo within 20 s of its start")
	}
	stop := make(chan struct{})
	wg := ta.load(d.url, 6, true, func() string { return "vo" }, stop)
	d.cmd.Process.Signal(syscall.SIGKILL) // while it loads
	<-d.done
	d = d.again()
	d.waitState("vo", "ready", 30*time.Second)
	waitCompleted(t, ta, 20, 30*time.Second)
	d.cmd.Process.Signal(syscall.SIGKILL) // while it streams
	<-d.done
	d = d.again()
	d.waitState("vo", "ready", 30*time.Second)
	before := ta.completed.Load()
	waitCompleted(t, ta, before+20, 30*time.Second)
	close(stop)
	wg.Wait()
	record(t, ta)
	if id := containerOf(t, "vo"); id != first {
		t.Errorf("the container was replaced (%s → %s) instead of adopted", first, id)
	}
	if ta.completed.Load() < before+20 {
		t.Errorf("after the second restart %d requests completed, want 20", ta.completed.Load()-before)
	}
}

// TestFaultContainerBadFlag: requests for a model whose container exits at
// once (its engine refuses a flag: the stand-in imitates vLLM's argparse
// line, "vllm: error: unrecognized arguments: …") are refused with a
// documented 503 that quotes that line. TestRealVLLM sees the real vLLM
// refuse a flag in its own words.
func TestFaultContainerBadFlag(t *testing.T) {
	loadImage(t, vllmOpenAI)
	d := containerDaemon(t, `
  badflag: {engine: vllm, runtime: docker, image: "`+vllmOpenAI.tag+`", path: m, memory: 2GiB, args: [--no-such-flag]}
`)
	ta := newTally("a container started with a flag its engine refuses (the stand-in's imitation of vLLM's argparse error; 503 quoting that line)")
	for i := 0; i < 5; i++ {
		ta.do(context.Background(), d.url, "badflag", i%2 == 0)
	}
	record(t, ta)
	if n := ta.said("model_unavailable", "unrecognized arguments: --no-such-flag"); n != 5 {
		t.Errorf("%d of 5 refusals quote the engine's line; they said:\n%s", n, ta.wordsOf())
	}
	if st := d.status().Model("badflag"); !strings.Contains(st.Reason+st.Diagnosis+st.LastLogLine, "unrecognized arguments: --no-such-flag") {
		t.Errorf("the failure does not quote the engine: %+v", st)
	}
}

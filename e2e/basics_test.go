package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

const basicConfig = `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
models:
  always:
    engine: sim
    mode: always-on
    memory: 8GiB
    args: [--flavor, sglang, --load-time, 300ms, --model, e2e-basic-always]
  ondemand:
    engine: sim
    memory: 8GiB
    aliases: [od]
    args: [--load-time, 500ms, --model, e2e-basic-ondemand]
  broken:
    engine: sim
    memory: 1GiB
    start_timeout: 1s
    args: [--hang-load, --flavor, llamacpp, --model, e2e-basic-broken]
`

func (d *daemon) status() status.Status {
	d.t.Helper()
	out, code := d.gantry("ps", "--json")
	if code != 0 {
		d.t.Fatalf("ps --json exit %d: %s", code, out)
	}
	var s status.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		d.t.Fatalf("ps --json: %v\n%s", err, out)
	}
	return s
}

func (d *daemon) waitState(model, state string, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, m := range d.status().Models {
			if m.Name == model && string(m.State) == state {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("%s not %s within %s: %+v", model, state, timeout, d.status())
}

func TestServeAndVerbs(t *testing.T) {
	d := startDaemon(t, basicConfig)
	d.waitState("always", "ready", 20*time.Second)

	s := d.status()
	if len(s.Models) != 3 || s.Memory.BudgetBytes != 60<<30 || s.Memory.ReservedBytes != 8<<30 {
		t.Fatalf("status %+v", s)
	}
	for _, m := range s.Models {
		if m.Name == "always" && (m.PID == 0 || m.Starts != 1 || m.Port == 0 || m.MemoryBytes != 8<<30) {
			t.Errorf("always: %+v", m)
		}
	}
	// The contract's fields are in the JSON itself, even when empty.
	var raw struct{ Models []map[string]any }
	json.Unmarshal([]byte(d.statusJSON()), &raw)
	for _, m := range raw.Models {
		for _, k := range []string{"name", "engine", "state", "port", "pid", "starts", "memory_bytes", "inflight", "queued", "last_used", "diagnosis"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%v: field %s missing from the contract", m["name"], k)
			}
		}
	}

	out, code := d.gantry("ps")
	if code != 0 || !strings.Contains(out, "always") || !strings.Contains(out, "ready") || !strings.Contains(out, "memory:") {
		t.Errorf("ps exit %d:\n%s", code, out)
	}

	// Flags after the positional argument work too; an alias works as a name.
	out, code = run(t, d.home, "start", "od", "--server", d.url)
	if code != 0 || !strings.Contains(out, "ondemand is ready") {
		t.Fatalf("start exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "starting ondemand") {
		t.Errorf("start showed no progress:\n%s", out)
	}

	out, code = d.gantry("logs", "-n", "3", "ondemand")
	if code != 0 || !strings.Contains(out, "sim: ready at") {
		t.Errorf("logs exit %d:\n%s", code, out)
	}

	out, code = d.gantry("start", "broken")
	if code == 0 || !strings.Contains(out, "start_timeout") || !strings.Contains(out, "Loading model") {
		t.Errorf("start of a broken model: exit %d:\n%s", code, out)
	}

	out, code = d.gantry("start", "nosuch")
	if code == 0 || !strings.Contains(out, "unknown model") || !strings.Contains(out, "ondemand") {
		t.Errorf("start of an unknown model: exit %d:\n%s", code, out)
	}

	out, code = d.gantry("stop", "ondemand")
	if code != 0 || len(simPIDs("e2e-basic-ondemand")) != 0 {
		t.Errorf("stop exit %d, sims left %v:\n%s", code, simPIDs("e2e-basic-ondemand"), out)
	}

	// SIGTERM to gantry stops every engine it started.
	if len(simPIDs("e2e-basic-always")) != 1 {
		t.Fatalf("always-on sim processes: %v", simPIDs("e2e-basic-always"))
	}
	d.stop()
	if left := simPIDs("e2e-basic-"); len(left) != 0 {
		t.Errorf("engines left after gantry stopped: %v", left)
	}
}

func TestLogsFollow(t *testing.T) {
	d := startDaemon(t, basicConfig)
	d.waitState("always", "ready", 20*time.Second)
	cmd := d.command("logs", "-f", "-n", "1", "ondemand")
	buf := newSyncBuffer()
	cmd.Stdout = buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if _, code := d.gantry("start", "ondemand"); code != 0 {
		t.Fatal("start failed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "sim: ready at") {
		if time.Now().After(deadline) {
			t.Fatalf("logs -f did not show the ready line; got:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUnreachableDaemon(t *testing.T) {
	out, code := run(t, t.TempDir(), "ps", "--server", "http://127.0.0.1:1")
	if code == 0 || !strings.Contains(out, "cannot reach gantry") || !strings.Contains(out, "gantry serve") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestDemoWithoutConfig is the README's first command on a fresh machine.
func TestDemoWithoutConfig(t *testing.T) {
	d := startDaemon(t, "")
	if !strings.Contains(d.out.String(), "DEMO") {
		t.Errorf("no demo banner:\n%s", d.out.String())
	}
	d.waitState("demo-chat", "ready", 30*time.Second)
	out, code := d.gantry("ps")
	if code != 0 || !strings.Contains(out, "demo-chat") || !strings.Contains(out, "demo-embed") {
		t.Errorf("ps exit %d:\n%s", code, out)
	}
}

func TestConfigValidateCLI(t *testing.T) {
	home := t.TempDir()
	out, code := run(t, home, "config", "validate", "--config", "../examples/gantry.yaml")
	if code != 1 || !strings.Contains(out, "GANTRY_API_KEY is not set") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestDiagnosisOfAFailedStart runs an "engine" that dies with vLLM's ptxas
// error on GB10 and checks that start, ps and /api/status say the cause.
func TestDiagnosisOfAFailedStart(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  gb10:
    engine: command
    memory: 1GiB
    command: [sh, -c, "echo \"(EngineCore_DP0 pid=93) ptxas fatal   : Value 'sm_121a' is not defined for option 'gpu-name'\"; exit 1"]
`)
	out, code := d.gantry("start", "gb10")
	// The diagnosis leads (cause and fix); the engine's line follows.
	_, failure, _ := strings.Cut(out, "gantry: gb10 did not start: ")
	first, rest, _ := strings.Cut(failure, "\n")
	if code == 0 || !strings.HasPrefix(first, "the Triton/ptxas in this engine image cannot build kernels for sm_121a") ||
		!strings.Contains(first, "TRITON_PTXAS_PATH") || !strings.Contains(rest, "the engine: exited while starting (exit status 1); last log line: (EngineCore_DP0 pid=93) ptxas fatal") {
		t.Errorf("start: exit %d:\n%s", code, out)
	}
	// A request's 503 (what Open WebUI shows its user) leads with it too.
	st, body := post(t, d.url+"/v1/chat/completions", `{"model":"gb10","messages":[{"role":"user","content":"hi"}]}`)
	if st != 503 || !strings.Contains(body, `"message":"model failed to start: gb10: the Triton/ptxas in this engine image cannot build kernels for sm_121a`) ||
		!strings.Contains(body, "(the engine: ") {
		t.Errorf("the 503: %d %s", st, body)
	}
	out, _ = d.gantry("ps", "--json")
	if !strings.Contains(out, `"diagnosis": "the Triton/ptxas in this engine image cannot build kernels for sm_121a`) {
		t.Errorf("ps --json:\n%s", out)
	}
}

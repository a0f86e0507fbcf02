// Package diagnose reads an engine's log (and gantry's own failure reason)
// for known failure signatures and says, in one line, what went wrong and
// what to do. The signatures are the lines the engines really print, taken
// from their sources and issue trackers.
package diagnose

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/gantryhq/gantry/internal/gpu"
)

// Levels.
const (
	Error   = "error"
	Warning = "warning"
)

// Diagnosis is one known signature found.
type Diagnosis struct {
	Rule  string `json:"rule"`
	Level string `json:"level"`
	Cause string `json:"cause"`
	Fix   string `json:"fix"`
	// Line is the log line that matched.
	Line string `json:"line"`
}

// String is the one line a user reads.
func (d Diagnosis) String() string { return d.Cause + " — " + d.Fix }

// Context is what a rule may use besides the log.
type Context struct {
	// Procs are the processes nvidia-smi says hold GPU memory.
	Procs []gpu.Proc
	// Port is the engine's port.
	Port int
	// Engine is the engine name.
	Engine string
}

type rule struct {
	name  string
	level string
	re    *regexp.Regexp
	say   func(m []string, c Context) (cause, fix string)
}

var rules = []rule{
	{"ptxas-sm121", Error, regexp.MustCompile(`ptxas fatal\s*:\s*Value '(sm_1[0-9]{2}a?)' is not defined for option 'gpu-name'`),
		func(m []string, c Context) (string, string) {
			return fmt.Sprintf("the Triton/ptxas in this engine image cannot build kernels for %s (GB10 is sm_121a)", m[1]),
				"set env: {TRITON_PTXAS_PATH: /usr/local/cuda/bin/ptxas} (the CUDA 13 ptxas), use a GB10-compatible image, or serve the model with SGLang"
		}},
	{"vllm-free-memory", Error, regexp.MustCompile(`Free memory on device(?: \S+)? \(([\d.]+)/([\d.]+) GiB\) on startup is less than desired GPU memory utilization \(([\d.]+), ([\d.]+) GiB\)`),
		func(m []string, c Context) (string, string) {
			cause := fmt.Sprintf("vLLM wanted %s GiB (utilization %s) but only %s of %s GiB were free when it started", m[4], m[3], m[1], m[2])
			fix := "memory is held by another process — often an orphaned vLLM EngineCore"
			if len(c.Procs) > 0 {
				var ps []string
				for _, p := range c.Procs {
					used := "?"
					if p.Used != nil {
						used = fmt.Sprintf("%.1f GiB", float64(*p.Used)/(1<<30))
					}
					ps = append(ps, fmt.Sprintf("pid %d %s (%s)", p.PID, p.Name, used))
				}
				fix += ": " + strings.Join(ps, ", ")
			}
			return cause, fix + "; stop it (kill the PID) or lower memory:"
		}},
	{"cuda-oom", Error, regexp.MustCompile(`CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|cudaErrorMemoryAllocation|ggml_backend_cuda_buffer_type_alloc_buffer: allocating .* failed`),
		func(m []string, c Context) (string, string) {
			return "the engine ran out of GPU memory",
				"lower context: or concurrency:, raise memory: (the engine's fraction follows it), or stop other models"
		}},
	{"compressed-tensors-scheme", Error, regexp.MustCompile(`No compressed-tensors compatible scheme was found|(?i)unsupported compressed.?tensors|compressed.?tensors.* is not supported`),
		func(m []string, c Context) (string, string) {
			return "this engine build cannot load the checkpoint's compressed-tensors scheme",
				"use a newer engine image, or a checkpoint in another format (ModelOpt, fp8)"
		}},
	{"address-in-use", Error, regexp.MustCompile(`(?i)address already in use|Errno 98|couldn't bind HTTP server socket`),
		func(m []string, c Context) (string, string) {
			return fmt.Sprintf("port %d is held by another process", c.Port),
				"stop that process (gantry doctor names port holders) or give the model another port:"
		}},
	{"gated-model", Error, regexp.MustCompile(`GatedRepoError|Cannot access gated repo|Access to model .* is restricted|401 Client Error|Unauthorized for url: https://huggingface\.co`),
		func(m []string, c Context) (string, string) {
			return "downloading the model from Hugging Face was refused (a gated or private repository)",
				"accept the license on huggingface.co and set env: {HF_TOKEN: \"${env.HF_TOKEN}\"}, or download the model into <root>/models first"
		}},
	{"trust-remote-code", Error, regexp.MustCompile(`trust_remote_code=True|requires you to execute the configuration file in that repo|--trust-remote-code`),
		func(m []string, c Context) (string, string) {
			return "the checkpoint ships its own model code, which the engine will not run by default",
				"add --trust-remote-code to args: if you trust the repository"
		}},
	{"binary-missing", Error, regexp.MustCompile(`exec: "([^"]+)": executable file not found|fork/exec ([^:]+): no such file or directory`),
		func(m []string, c Context) (string, string) {
			bin := m[1]
			if bin == "" {
				bin = m[2]
			}
			return fmt.Sprintf("the engine program %s is not installed here", bin),
				fmt.Sprintf("install it, set engines.%s.binary, or use runtime: docker", c.Engine)
		}},
	{"docker-daemon", Error, regexp.MustCompile(`Cannot connect to the Docker daemon|docker: Error response from daemon: could not select device driver`),
		func(m []string, c Context) (string, string) {
			if strings.Contains(m[0], "device driver") {
				return "docker cannot give the container a GPU", "install the NVIDIA Container Toolkit and restart docker"
			}
			return "docker is not running", "start it (systemctl start docker) or use runtime: native"
		}},
	{"marlin-fp4-fallback", Warning, regexp.MustCompile(`Weight-only FP4 compression will be used leveraging the Marlin kernel`),
		func(m []string, c Context) (string, string) {
			return "vLLM runs the FP4 weights through the Marlin weight-only fallback: little or no gain over FP8",
				"prefer an FP8 checkpoint with vLLM on this box, or serve the FP4 checkpoint with SGLang or TensorRT-LLM"
		}},
}

// Rules lists the rule names.
func Rules() []string {
	var n []string
	for _, r := range rules {
		n = append(n, r.name)
	}
	return n
}

// Scan checks lines (oldest first) and returns what it finds, errors first,
// each rule once, with the latest matching line.
func Scan(lines []string, c Context) []Diagnosis {
	found := map[string]Diagnosis{}
	for _, l := range lines {
		if strings.HasPrefix(l, "[gantry]") {
			continue // gantry's own marks quote the argv, not the engine's words
		}
		for _, r := range rules {
			if m := r.re.FindStringSubmatch(l); m != nil {
				cause, fix := r.say(m, c)
				found[r.name] = Diagnosis{Rule: r.name, Level: r.level, Cause: cause, Fix: fix, Line: strings.TrimSpace(l)}
			}
		}
	}
	var out []Diagnosis
	for _, lv := range []string{Error, Warning} {
		for _, r := range rules {
			if d, ok := found[r.name]; ok && d.Level == lv {
				out = append(out, d)
			}
		}
	}
	return out
}

// Summary is the first diagnosis as one line, "" when none.
func Summary(ds []Diagnosis) string {
	if len(ds) == 0 {
		return ""
	}
	return ds[0].String()
}

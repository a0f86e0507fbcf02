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
	"github.com/gantryhq/gantry/internal/progress"
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
	// Quant is the checkpoint's quantization method as the inventory
	// found it ("compressed-tensors", "modelopt", "fp8", …), "" unknown.
	Quant string
	// Unified: GPU and CPU share the memory (DGX Spark), where the page
	// cache counts as used to CUDA.
	Unified bool

	// weightsSeen is set by Scan once a line shows the weights loading:
	// a failure before it happened before any weight was read.
	weightsSeen bool
}

// rule is one failure signature. It matches a log line (re), or the
// exception a traceback ends with (exc): the type and the module that
// raised it carry over to wordings the rule has never seen.
type rule struct {
	name  string
	level string
	re    *regexp.Regexp
	exc   func(e *Exception) bool
	say   func(m found, c Context) (cause, fix string)
}

// found is what a rule matched: the regexp's groups (m[0] the whole
// match) or the exception.
type found struct {
	m   []string
	exc *Exception
}

// what is the matched text, for messages.
func (f found) what() string {
	if f.exc != nil {
		return f.exc.Type + ": " + f.exc.Message
	}
	return f.m[0]
}

func inModule(parts ...string) func(e *Exception) bool {
	return func(e *Exception) bool {
		mod := strings.ToLower(e.Module())
		for _, p := range parts {
			if strings.Contains(mod, p) {
				return true
			}
		}
		return false
	}
}

var rules = []rule{
	{name: "ptxas-sm121", level: Error, re: regexp.MustCompile(`ptxas fatal\s*:\s*Value '(sm_1[0-9]{2}a?)' is not defined for option 'gpu-name'`),
		say: func(f found, c Context) (string, string) {
			return fmt.Sprintf("the Triton/ptxas in this engine image cannot build kernels for %s (GB10 is sm_121a)", f.m[1]),
				"set env: {TRITON_PTXAS_PATH: /usr/local/cuda/bin/ptxas} (the CUDA 13 ptxas), use a GB10-compatible image, or serve the model with SGLang"
		}},
	{name: "vllm-free-memory", level: Error, re: regexp.MustCompile(`Free memory on device(?: \S+)? \(([\d.]+)/([\d.]+) GiB\) on startup is less than desired GPU memory utilization \(([\d.]+), ([\d.]+) GiB\)`),
		say: func(f found, c Context) (string, string) {
			m := f.m
			cause := fmt.Sprintf("vLLM wanted %s GiB (utilization %s) but only %s of %s GiB were free when it started", m[4], m[3], m[1], m[2])
			if c.Unified {
				// vllm-project/vllm#48140: on unified memory CUDA's free is
				// MemFree, and the page cache counts as used.
				return cause + " — on unified memory CUDA counts the page cache as used",
					"gantry evicts the model's own checkpoint pages before each start; set memory.drop_caches: true (gantry as root) to drop the rest, or drop --gpu-memory-utilization from args so gantry passes its own share and the exact KV size"
			}
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
	// The KV cache the engine could allocate cannot hold one sequence of
	// the context it was told: vLLM (old and V1 wording), SGLang.
	{name: "kv-cache-too-small", level: Error,
		re: regexp.MustCompile(`max seq len \(?(\d+)\)? is larger than the maximum number of tokens that can be stored in KV cache \((\d+)\)|max seq len \((\d+)\), \(([\d.]+ GiB) KV cache is needed, which is larger than the available KV cache memory \(([\d.]+ GiB)\)|Not enough memory\. Please try to increase --mem-fraction-static|max_total_tokens=\d+ is larger than the profiled value -\d+`),
		say: func(f found, c Context) (string, string) {
			m := f.m
			switch {
			case m[1] != "":
				return fmt.Sprintf("the KV cache holds %s tokens, fewer than one sequence of the context %s", m[2], m[1]),
					"lower context: (gantry passes it as the engine's context length) or raise memory:; gantry sizes the KV cache from memory: and concurrency:"
			case m[3] != "":
				return fmt.Sprintf("one sequence of the context %s needs %s of KV cache, but the engine had %s for it", m[3], m[4], m[5]),
					"lower context: or raise memory:; on unified memory the page cache can eat the KV budget (see On a DGX Spark in the README)"
			}
			return "the engine had no memory left for its KV cache after loading the weights",
				"raise memory: (gantry turns it into the engine's memory fraction), or lower context: / concurrency:"
		}},
	// The KV cache came out at zero or below: vLLM's profiling left it
	// nothing — on unified memory because it counted the page cache or the
	// compiler's heap as the model's (eugr/spark-vllm-docker#286,
	// NVIDIA/xr-ai#462).
	{name: "kv-cache-none", level: Error, re: regexp.MustCompile(`Available KV cache memory: (-[\d.]+ GiB)|No available memory for the cache blocks`),
		say: func(f found, c Context) (string, string) {
			what := "nothing"
			if f.m[1] != "" {
				what = f.m[1]
			}
			if c.Unified {
				return "vLLM's memory profiling left the KV cache " + what + ": on unified memory it counts the page cache and the compiler's heap as the model's",
					"gantry passes --kv-cache-memory-bytes (the exact size) unless args set --gpu-memory-utilization: drop that flag, or use a vLLM that takes the exact size (0.11 or newer)"
			}
			return "after the weights and activations vLLM had " + what + " left for the KV cache",
				"raise memory: (gantry turns it into the engine's share), or lower context: / concurrency:"
		}},
	// vLLM refuses a context longer than the model's own
	// (vllm/config/model.py, ModelConfig's max_model_len check).
	{name: "context-too-long", level: Error, re: regexp.MustCompile(`User-specified max_model_len \((\d+)\) is greater than the derived max_model_len \((\w+)=(\d+)`),
		say: func(f found, c Context) (string, string) {
			return fmt.Sprintf("the context %s is longer than the model allows (%s %s)", f.m[1], f.m[2], f.m[3]),
				fmt.Sprintf("lower context: to %s or less (and drop --max-model-len from args if you set it)", f.m[3])
		}},
	{name: "cuda-oom", level: Error, re: regexp.MustCompile(`CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|cudaErrorMemoryAllocation|ggml_backend_cuda_buffer_type_alloc_buffer: allocating .* failed|unable to allocate CUDA\d* buffer`),
		say: func(f found, c Context) (string, string) {
			if c.Unified && !c.weightsSeen {
				// Before any weight was read: CUDA's own bookkeeping
				// (cudaMemGetInfo) saw too little free memory.
				return "CUDA could not allocate before the weights loaded: on unified memory cudaMemGetInfo counts the page cache as used",
					"gantry evicts the model's own checkpoint pages before each start; set memory.drop_caches: true (gantry as root) to drop the rest, or stop another model"
			}
			return "the engine ran out of GPU memory",
				"lower context: or concurrency:, raise memory: (the engine's fraction follows it), or stop other models"
		}},
	{name: "compressed-tensors-scheme", level: Error, re: regexp.MustCompile(`No compressed-tensors compatible scheme was found|(?i)unsupported compressed.?tensors|compressed.?tensors.* is not supported`),
		say: func(f found, c Context) (string, string) {
			return "this engine build cannot load the checkpoint's compressed-tensors scheme",
				"use a newer engine image, or a checkpoint in another format (ModelOpt, fp8)"
		}},
	// Any exception raised inside the engine's quantization code: the
	// loader of this checkpoint's format failed, whatever it says.
	{name: "quantization-loader", level: Error, exc: inModule("quantization", "compressed_tensors", "modelopt", "/quant"),
		say: func(f found, c Context) (string, string) {
			format := "the checkpoint's"
			if c.Quant != "" {
				format = "the " + c.Quant
			}
			return fmt.Sprintf("%s quantization loader of this engine failed (%s, in %s)", format, oneLine(f.what()), f.exc.Module()),
				"this engine version cannot load this checkpoint format: use a newer engine image, or a checkpoint in another format (ModelOpt NVFP4 or fp8)"
		}},
	{name: "nccl-init", level: Error, re: regexp.MustCompile(`NCCL error:? ?[^\n]*|ncclSystemError|ncclUnhandledCudaError|ncclInternalError|ncclCommInitRank failed`),
		say: func(f found, c Context) (string, string) {
			return "NCCL, the GPUs' communication library, could not set up (" + oneLine(f.what()) + ")",
				"in a container give it ipc: host (or a large shm); across two boxes set env: {NCCL_SOCKET_IFNAME: <the link's interface>}; env: {NCCL_DEBUG: INFO} says more"
		}},
	{name: "cuda-init", level: Error, re: regexp.MustCompile(`Unexpected error from cudaGetDeviceCount|Error 803: system has unsupported display driver|CUDA driver version is insufficient|no CUDA-capable device is detected|no kernel image is available for execution on the device|Found no NVIDIA driver|ggml_cuda_init: failed to initialize CUDA`),
		say: func(f found, c Context) (string, string) {
			return "CUDA could not start in the engine (" + oneLine(f.what()) + ")",
				"the driver and the engine's CUDA do not match, or no GPU is visible: check nvidia-smi on the host, the NVIDIA Container Toolkit for containers, and use an image built for this driver"
		}},
	{name: "chat-template", level: Error, re: regexp.MustCompile(`default chat template is no longer allowed|chat_template is not set|ChatTemplateResolutionError|failed to parse chat template|(?i)error.*chat template|jinja2\.exceptions\.\w+`),
		say: func(f found, c Context) (string, string) {
			return "the model has no usable chat template (" + oneLine(f.what()) + ")",
				"add a template in args: (--chat-template FILE for vLLM and SGLang, --jinja --chat-template-file FILE for llama.cpp), or use the instruct checkpoint, whose tokenizer_config.json carries one"
		}},
	{name: "tokenizer-load", level: Error, re: regexp.MustCompile(`data did not match any variant of untagged enum \w+|Can't load tokenizer for|Couldn't instantiate the backend tokenizer`),
		exc: inModule("tokenization", "tokenizers/"),
		say: func(f found, c Context) (string, string) {
			return "the tokenizer could not be loaded (" + oneLine(f.what()) + ")",
				"'untagged enum' means tokenizer.json was written by a newer tokenizers library than the engine's: use a newer image; otherwise check that the tokenizer files are in the model folder"
		}},
	{name: "disk-full", level: Error, re: regexp.MustCompile(`No space left on device|\[Errno 28\]|StorageFull|ENOSPC`),
		say: func(f found, c Context) (string, string) {
			return "the disk filled up while the engine loaded or compiled",
				"free space where <root>/cache and the model live (compile caches of torch.compile, Triton and TensorRT grow), or move root:"
		}},
	{name: "unknown-architecture", level: Error, re: regexp.MustCompile(`unknown model architecture: '([^']*)'|Model architectures \['([^']+)'\] (?:are|is) not supported|model of type (\S+) but Transformers does not recognize this architecture`),
		say: func(f found, c Context) (string, string) {
			arch := f.m[1] + f.m[2] + f.m[3]
			return fmt.Sprintf("this engine version does not know the model architecture %q", arch),
				"use a newer engine version (or image) that supports it, or another engine"
		}},
	{name: "address-in-use", level: Error, re: regexp.MustCompile(`(?i)address already in use|Errno 98|couldn't bind HTTP server socket`),
		say: func(f found, c Context) (string, string) {
			return fmt.Sprintf("port %d is held by another process", c.Port),
				"stop that process (gantry doctor names port holders) or give the model another port:"
		}},
	{name: "gated-model", level: Error, re: regexp.MustCompile(`GatedRepoError|Cannot access gated repo|Access to model .* is restricted|401 Client Error|Unauthorized for url: https://huggingface\.co`),
		say: func(f found, c Context) (string, string) {
			return "downloading the model from Hugging Face was refused (a gated or private repository)",
				"accept the license on huggingface.co and set env: {HF_TOKEN: \"${env.HF_TOKEN}\"}, or download the model into <root>/models first"
		}},
	{name: "trust-remote-code", level: Error, re: regexp.MustCompile(`trust_remote_code=True|requires you to execute the configuration file in that repo|--trust-remote-code`),
		say: func(f found, c Context) (string, string) {
			return "the checkpoint ships its own model code, which the engine will not run by default",
				"add --trust-remote-code to args: if you trust the repository"
		}},
	{name: "binary-missing", level: Error, re: regexp.MustCompile(`exec: "([^"]+)": executable file not found|fork/exec ([^:]+): no such file or directory`),
		say: func(f found, c Context) (string, string) {
			bin := f.m[1]
			if bin == "" {
				bin = f.m[2]
			}
			return fmt.Sprintf("the engine program %s is not installed here", bin),
				fmt.Sprintf("install it, set engines.%s.binary, or use runtime: docker", c.Engine)
		}},
	{name: "docker-daemon", level: Error, re: regexp.MustCompile(`Cannot connect to the Docker daemon|the Docker daemon does not answer|could not select device driver "[^"]*" with capabilities: \[\[gpu\]\]`),
		say: func(f found, c Context) (string, string) {
			if strings.Contains(f.m[0], "device driver") {
				return "docker cannot give the container a GPU (no NVIDIA runtime in the daemon)",
					"install the NVIDIA Container Toolkit and run nvidia-ctk runtime configure --runtime=docker, then restart dockerd (or gpus: none for a CPU engine)"
			}
			return "the Docker daemon does not answer", "start it (systemctl start docker), check DOCKER_HOST, or use runtime: native"
		}},
	// gantry's mark when the daemon reports OOMKilled for the container.
	{name: "container-oom", level: Error, re: regexp.MustCompile(`the container was OOM-killed`),
		say: func(f found, c Context) (string, string) {
			if c.Unified {
				return "the kernel killed the container for memory: on unified memory the engine, the page cache and the OS share it",
					"lower memory: / context: / concurrency:, stop another model, or set memory.drop_caches: true"
			}
			return "the kernel killed the container for memory (host RAM, not GPU memory)",
				"give the engine less host memory to hold (fewer CPU-side caches, smaller swap space), or stop other work on the box"
		}},
	{name: "marlin-fp4-fallback", level: Warning, re: regexp.MustCompile(`Weight-only FP4 compression will be used leveraging the Marlin kernel`),
		say: func(f found, c Context) (string, string) {
			return "vLLM runs the FP4 weights through the Marlin weight-only fallback: little or no gain over FP8",
				"prefer an FP8 checkpoint with vLLM on this box, or serve the FP4 checkpoint with SGLang or TensorRT-LLM"
		}},
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// Rules lists the rule names.
func Rules() []string {
	var n []string
	for _, r := range rules {
		n = append(n, r.name)
	}
	return append(n, "load-died-unified")
}

// Scan checks lines (oldest first) and returns what it finds, errors first,
// each rule once, with the latest matching line. Rules on exceptions look
// at the exception the last traceback ends with.
func Scan(lines []string, c Context) []Diagnosis {
	hits := map[string]Diagnosis{}
	exc := LastException(lines)
	for _, r := range rules {
		if r.exc != nil && exc != nil && r.exc(exc) {
			cause, fix := r.say(found{exc: exc}, c)
			hits[r.name] = Diagnosis{Rule: r.name, Level: r.level, Cause: cause, Fix: fix, Line: trim(exc.String())}
		}
	}
	var lastStep progress.Step
	var lastStepLine string
	for _, l := range lines {
		if strings.HasPrefix(l, "[gantry]") {
			continue // gantry's own marks quote the argv, not the engine's words
		}
		for _, seg := range strings.Split(l, "\r") {
			if st, ok := progress.Parse(seg); ok {
				lastStep, lastStepLine = st, seg
				if st.Phase == progress.Weights || st.Phase == progress.LoadedWhen {
					c.weightsSeen = true
				}
			}
		}
		for _, r := range rules {
			if r.re == nil {
				continue
			}
			if m := r.re.FindStringSubmatch(l); m != nil {
				cause, fix := r.say(found{m: m}, c)
				hits[r.name] = Diagnosis{Rule: r.name, Level: r.level, Cause: cause, Fix: fix, Line: trim(strings.TrimSpace(l))}
			}
		}
	}
	var out []Diagnosis
	if d, ok := loadDied(lines, lastStep, lastStepLine, c); ok && len(hits) == 0 {
		out = append(out, d)
	}
	for _, lv := range []string{Error, Warning} {
		for _, r := range rules {
			if d, ok := hits[r.name]; ok && d.Level == lv {
				out = append(out, d)
			}
		}
	}
	return out
}

// died is how an engine's end reads when the kernel (or docker) killed it.
var died = regexp.MustCompile(`signal: killed|exit status 137|\bKilled\b|oom-kill|Out of memory: Killed process`)

// loadDied is the failure of a load that stopped partway through the
// weights with the process killed: on unified memory the page cache grew
// until the kernel killed the engine (MiaAI-Lab/Qwen3.8-Flash-Next-Dual-
// DGX-Sparks#35: loads died at 73 % and 97 % after a checkpoint copy).
func loadDied(lines []string, last progress.Step, line string, c Context) (Diagnosis, bool) {
	if !c.Unified || last.Phase != progress.Weights || last.Total == 0 || last.Done >= last.Total || len(lines) == 0 {
		return Diagnosis{}, false
	}
	tail := strings.Join(lines[max(0, len(lines)-3):], "\n")
	if !died.MatchString(tail) {
		return Diagnosis{}, false
	}
	return Diagnosis{Rule: "load-died-unified", Level: Error,
		Cause: fmt.Sprintf("the engine was killed while loading its weights (shard %d of %d): on unified memory the page cache grows into the memory the load needs", last.Done, last.Total),
		Fix:   "gantry evicts the checkpoint's own pages before each start; set memory.drop_caches: true (gantry as root) after copying a large checkpoint, or free memory (stop another model)",
		Line:  trim(strings.TrimSpace(line))}, true
}

// Summary is the first diagnosis as one line, "" when none.
func Summary(ds []Diagnosis) string {
	if len(ds) == 0 {
		return ""
	}
	return ds[0].String()
}

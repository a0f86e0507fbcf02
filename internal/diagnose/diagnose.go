// Package diagnose reads an engine's log (and gantry's own failure reason)
// for known failure signatures and says, in one line, what went wrong and
// what to do. The signatures are the lines the engines really print, taken
// from their sources and issue trackers.
package diagnose

import (
	"fmt"
	"strings"

	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/lazyre"
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

	// Signatures are the engines' own failure signatures (their
	// descriptors'), tried before those every engine shares.
	Signatures []Signature
	// Progress reads the engines' load lines (a failure before the
	// weights loaded reads differently); the zero Parser reads tqdm bars.
	Progress progress.Parser

	// weightsSeen is set by Scan once a line shows the weights loading:
	// a failure before it happened before any weight was read.
	weightsSeen bool
}

// Signature is one failure signature. It matches a log line (Line), or
// the exception a traceback ends with (Exception): the type and the module
// that raised it carry over to wordings the rule has never seen. Say
// words the cause and the fix. The signatures here are those every engine
// shares; each engine's own are in its descriptor (internal/engine), and
// Scan takes them through Context.Signatures.
type Signature struct {
	Name      string
	Level     string
	Line      *lazyre.Regexp
	Exception func(e *Exception) bool
	Say       func(m Match, c Context) (cause, fix string)
}

// Match is what a signature matched: the regexp's groups (Groups[0] the
// whole match) or the exception.
type Match struct {
	Groups    []string
	Exception *Exception
}

// What is the matched text, for messages.
func (f Match) What() string {
	if f.Exception != nil {
		return f.Exception.Type + ": " + f.Exception.Message
	}
	return f.Groups[0]
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

var rules = []Signature{
	{Name: "ptxas-sm121", Level: Error, Line: lazyre.New(`ptxas fatal\s*:\s*Value '(sm_1[0-9]{2}a?)' is not defined for option 'gpu-name'`),
		Say: func(f Match, c Context) (string, string) {
			return fmt.Sprintf("the Triton/ptxas in this engine image cannot build kernels for %s (GB10 is sm_121a)", f.Groups[1]),
				"set env: {TRITON_PTXAS_PATH: /usr/local/cuda/bin/ptxas} (the CUDA 13 ptxas), use a GB10-compatible image, or serve the model with SGLang"
		}},
	{Name: "cuda-oom", Level: Error, Line: lazyre.New(`CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|cudaErrorMemoryAllocation|ggml_backend_cuda_buffer_type_alloc_buffer: allocating .* failed|unable to allocate CUDA\d* buffer`),
		Say: func(f Match, c Context) (string, string) {
			if c.Unified && !c.weightsSeen {
				// Before any weight was read: CUDA's own bookkeeping
				// (cudaMemGetInfo) saw too little free memory.
				return "CUDA could not allocate before the weights loaded: on unified memory cudaMemGetInfo counts the page cache as used",
					"gantry evicts the model's own checkpoint pages before each start; set memory.drop_caches: true (gantry as root) to drop the rest, or stop another model"
			}
			return "the engine ran out of GPU memory",
				"lower context: or concurrency:, raise memory: (the engine's fraction follows it), or stop other models"
		}},
	{Name: "compressed-tensors-scheme", Level: Error, Line: lazyre.New(`No compressed-tensors compatible scheme was found|(?i)unsupported compressed.?tensors|compressed.?tensors.* is not supported`),
		Say: func(f Match, c Context) (string, string) {
			return "this engine build cannot load the checkpoint's compressed-tensors scheme",
				"use a newer engine image, or a checkpoint in another format (ModelOpt, fp8)"
		}},
	// Any exception raised inside the engine's quantization code: the
	// loader of this checkpoint's format failed, whatever it says.
	{Name: "quantization-loader", Level: Error, Exception: inModule("quantization", "compressed_tensors", "modelopt", "/quant"),
		Say: func(f Match, c Context) (string, string) {
			format := "the checkpoint's"
			if c.Quant != "" {
				format = "the " + c.Quant
			}
			return fmt.Sprintf("%s quantization loader of this engine failed (%s, in %s)", format, oneLine(f.What()), f.Exception.Module()),
				"this engine version cannot load this checkpoint format: use a newer engine image, or a checkpoint in another format (ModelOpt NVFP4 or fp8)"
		}},
	// A quantization scheme the model's own code does not handle: the
	// exception is raised in the model (sglang/srt/models/deepseek_v2.py),
	// not in quantization code, but it names the scheme's classes
	// ('CompressedTensorsLinearMethod' object has no attribute
	// 'quant_config': sgl-project/sglang#11899), or a linear layer lacks
	// the plain weight the model reads (a quantized layer holds packed
	// weights: 'ReplicatedLinear' object has no attribute 'weight',
	// sgl-project/sglang#25331 with compressed-tensors NVFP4, #22855 with
	// AWQ). SGLang fails this way on compressed-tensors checkpoints of some
	// MoE models.
	{Name: "quantization-in-model", Level: Error, Exception: quantInModel,
		Say: func(f Match, c Context) (string, string) {
			format := "the checkpoint's quantization"
			if c.Quant != "" {
				format = "the checkpoint's " + c.Quant + " quantization"
			}
			return fmt.Sprintf("%s is not supported by this engine's code for this model (%s, in %s)", format, oneLine(f.What()), f.Exception.Module()),
				"use a newer engine image, or a checkpoint of this model in another format (ModelOpt NVFP4 or fp8); the seed's advice: avoid compressed-tensors with SGLang"
		}},
	{Name: "nccl-init", Level: Error, Line: lazyre.New(`NCCL error:? ?[^\n]*|ncclSystemError|ncclUnhandledCudaError|ncclInternalError|ncclCommInitRank failed`),
		Say: func(f Match, c Context) (string, string) {
			return "NCCL, the GPUs' communication library, could not set up (" + oneLine(f.What()) + ")",
				"in a container give it ipc: host (or a large shm); across two boxes set env: {NCCL_SOCKET_IFNAME: <the link's interface>}; env: {NCCL_DEBUG: INFO} says more"
		}},
	{Name: "cuda-init", Level: Error, Line: lazyre.New(`Unexpected error from cudaGetDeviceCount|Error 803: system has unsupported display driver|CUDA driver version is insufficient|no CUDA-capable device is detected|no kernel image is available for execution on the device|Found no NVIDIA driver|ggml_cuda_init: failed to initialize CUDA`),
		Say: func(f Match, c Context) (string, string) {
			return "CUDA could not start in the engine (" + oneLine(f.What()) + ")",
				"the driver and the engine's CUDA do not match, or no GPU is visible: check nvidia-smi on the host, the NVIDIA Container Toolkit for containers, and use an image built for this driver"
		}},
	{Name: "chat-template", Level: Error, Line: lazyre.New(`default chat template is no longer allowed|chat_template is not set|ChatTemplateResolutionError|failed to parse chat template|(?i)error.*chat template|jinja2\.exceptions\.\w+`),
		Say: func(f Match, c Context) (string, string) {
			return "the model has no usable chat template (" + oneLine(f.What()) + ")",
				"add a template in args: (--chat-template FILE for vLLM and SGLang, --jinja --chat-template-file FILE for llama.cpp), or use the instruct checkpoint, whose tokenizer_config.json carries one"
		}},
	{Name: "tokenizer-load", Level: Error, Line: lazyre.New(`data did not match any variant of untagged enum \w+|Can't load tokenizer for|Couldn't instantiate the backend tokenizer`),
		Exception: inModule("tokenization", "tokenizers/"),
		Say: func(f Match, c Context) (string, string) {
			return "the tokenizer could not be loaded (" + oneLine(f.What()) + ")",
				"'untagged enum' means tokenizer.json was written by a newer tokenizers library than the engine's: use a newer image; otherwise check that the tokenizer files are in the model folder"
		}},
	{Name: "disk-full", Level: Error, Line: lazyre.New(`No space left on device|\[Errno 28\]|StorageFull|ENOSPC`),
		Say: func(f Match, c Context) (string, string) {
			return "the disk filled up while the engine loaded or compiled",
				"free space where <root>/cache and the model live (compile caches of torch.compile, Triton and TensorRT grow), or move root:"
		}},
	{Name: "unknown-architecture", Level: Error, Line: lazyre.New(`unknown model architecture: '([^']*)'|Model architectures \['([^']+)'\] (?:are|is) not supported|model of type (\S+) but Transformers does not recognize this architecture`),
		Say: func(f Match, c Context) (string, string) {
			arch := f.Groups[1] + f.Groups[2] + f.Groups[3]
			return fmt.Sprintf("this engine version does not know the model architecture %q", arch),
				"use a newer engine version (or image) that supports it, or another engine"
		}},
	{Name: "address-in-use", Level: Error, Line: lazyre.New(`(?i)address already in use|Errno 98|couldn't bind HTTP server socket`),
		Say: func(f Match, c Context) (string, string) {
			return fmt.Sprintf("port %d is held by another process", c.Port),
				"stop that process (gantry doctor names port holders) or give the model another port:"
		}},
	{Name: "gated-model", Level: Error, Line: lazyre.New(`GatedRepoError|Cannot access gated repo|Access to model .* is restricted|401 Client Error|Unauthorized for url: https://huggingface\.co`),
		Say: func(f Match, c Context) (string, string) {
			return "downloading the model from Hugging Face was refused (a gated or private repository)",
				"accept the license on huggingface.co and set env: {HF_TOKEN: \"${env.HF_TOKEN}\"}, or download the model into <root>/models first"
		}},
	{Name: "trust-remote-code", Level: Error, Line: lazyre.New(`trust_remote_code=True|requires you to execute the configuration file in that repo|--trust-remote-code`),
		Say: func(f Match, c Context) (string, string) {
			return "the checkpoint ships its own model code, which the engine will not run by default",
				"add --trust-remote-code to args: if you trust the repository"
		}},
	{Name: "binary-missing", Level: Error, Line: lazyre.New(`exec: "([^"]+)": executable file not found|fork/exec ([^:]+): no such file or directory`),
		Say: func(f Match, c Context) (string, string) {
			bin := f.Groups[1]
			if bin == "" {
				bin = f.Groups[2]
			}
			return fmt.Sprintf("the engine program %s is not installed here", bin),
				fmt.Sprintf("install it, set engines.%s.binary, or use runtime: docker", c.Engine)
		}},
	{Name: "docker-daemon", Level: Error, Line: lazyre.New(`Cannot connect to the Docker daemon|the Docker daemon does not answer|could not select device driver "[^"]*" with capabilities: \[\[gpu\]\]`),
		Say: func(f Match, c Context) (string, string) {
			if strings.Contains(f.Groups[0], "device driver") {
				return "docker cannot give the container a GPU (no NVIDIA runtime in the daemon)",
					"install the NVIDIA Container Toolkit and run nvidia-ctk runtime configure --runtime=docker, then restart dockerd (or gpus: none for a CPU engine)"
			}
			return "the Docker daemon does not answer", "start it (systemctl start docker), check DOCKER_HOST, or use runtime: native"
		}},
	// gantry's mark when the daemon reports OOMKilled for the container.
	{Name: "container-oom", Level: Error, Line: lazyre.New(`the container was OOM-killed`),
		Say: func(f Match, c Context) (string, string) {
			if c.Unified {
				return "the kernel killed the container for memory: on unified memory the engine, the page cache and the OS share it",
					"lower memory: / context: / concurrency:, stop another model, or set memory.drop_caches: true"
			}
			return "the kernel killed the container for memory (host RAM, not GPU memory)",
				"give the engine less host memory to hold (fewer CPU-side caches, smaller swap space), or stop other work on the box"
		}},
}

// quantClass is a quantization scheme's own class, as an exception quotes
// it: 'CompressedTensorsLinearMethod', 'Fp8MoEMethod', 'AWQConfig',
// 'ModelOptFp4LinearMethod', 'AscendQuantConfig' …
var quantClass = lazyre.New(`'\w*(?:CompressedTensors|ModelOpt|Modelopt|Fp8|FP8|Fp4|FP4|AWQ|Awq|GPTQ|Gptq|Marlin|Mxfp4|MXFP4|NVFP4|Nvfp4|W8A8|W4A16|W4A4|WNA16|BitsAndBytes|Quant)\w*'`)

// linearWithoutWeight is a linear layer read for a plain weight it does
// not have: a quantized layer holds packed weights and scales instead.
var linearWithoutWeight = lazyre.New(`'\w*Linear\w*' object has no attribute 'weight'`)

// quantInModel: the exception is about the quantization scheme — it names
// one of the scheme's classes, or a linear layer without a plain weight (a
// quantized layer's are packed) — wherever it was raised.
func quantInModel(e *Exception) bool {
	msg := e.Type + ": " + e.Message
	return quantClass.MatchString(msg) || linearWithoutWeight.MatchString(msg)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// Rules lists the names of the signatures every engine shares (each
// engine's own are in its descriptor).
func Rules() []string {
	var n []string
	for _, r := range rules {
		n = append(n, r.Name)
	}
	return append(n, "load-died-unified")
}

// Scan checks lines (oldest first) against the engines' own signatures
// (c.Signatures, first) and those every engine shares, and returns what
// it finds, errors first, each rule once, with the latest matching line.
// Rules on exceptions look at the exception the last traceback ends
// with.
func Scan(lines []string, c Context) []Diagnosis {
	all := append(append([]Signature(nil), c.Signatures...), rules...)
	hits := map[string]Diagnosis{}
	exc := LastException(lines)
	for _, r := range all {
		if r.Exception != nil && exc != nil && r.Exception(exc) {
			cause, fix := r.Say(Match{Exception: exc}, c)
			hits[r.Name] = Diagnosis{Rule: r.Name, Level: r.Level, Cause: cause, Fix: fix, Line: trim(exc.String())}
		}
	}
	var lastStep progress.Step
	var lastStepLine string
	for _, l := range lines {
		if strings.HasPrefix(l, "[gantry]") {
			continue // gantry's own marks quote the argv, not the engine's words
		}
		for _, seg := range strings.Split(l, "\r") {
			if st, ok := c.Progress.Parse(seg); ok {
				lastStep, lastStepLine = st, seg
				if st.Phase == progress.Weights || st.Phase == progress.LoadedWhen {
					c.weightsSeen = true
				}
			}
		}
		for _, r := range all {
			if r.Line == nil {
				continue
			}
			if m := r.Line.FindStringSubmatch(l); m != nil {
				cause, fix := r.Say(Match{Groups: m}, c)
				hits[r.Name] = Diagnosis{Rule: r.Name, Level: r.Level, Cause: cause, Fix: fix, Line: trim(strings.TrimSpace(l))}
			}
		}
	}
	var out []Diagnosis
	if d, ok := loadDied(lines, lastStep, lastStepLine, c); ok && len(hits) == 0 {
		out = append(out, d)
	}
	for _, lv := range []string{Error, Warning} {
		seen := map[string]bool{}
		for _, r := range all {
			if d, ok := hits[r.Name]; ok && d.Level == lv && !seen[r.Name] {
				seen[r.Name] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// died is how an engine's end reads when the kernel (or docker) killed it.
var died = lazyre.New(`signal: killed|exit status 137|\bKilled\b|oom-kill|Out of memory: Killed process`)

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

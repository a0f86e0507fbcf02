// Package engine knows, for each inference engine gantry can run, how to
// launch it (native argv or docker run argv), how to tell that it is ready,
// how to stop it and where its metrics are. It builds argv as lists: nothing
// here goes through a shell, so names and paths are passed literally.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/internal/config"
)

// Launch is everything the supervisor needs to run one engine process.
type Launch struct {
	// Argv is the program and its arguments.
	Argv []string
	// Env holds KEY=VALUE pairs added to gantry's own environment.
	Env []string
	// DockerName is the docker container name, "" for a native process.
	DockerName string
	// PreStart, when set, runs (and may fail) before Argv: it removes a stale
	// container of the same name, so "name already in use" cannot happen.
	PreStart []string
	// Stop, when set, stops the engine gracefully (docker stop -t N); else
	// the supervisor sends SIGTERM to the process group.
	Stop []string
	// BaseURL is where the engine answers HTTP, e.g. http://127.0.0.1:30000.
	BaseURL string
	// MetricsURL is the engine's Prometheus endpoint, "" if it has none.
	MetricsURL string
	// Container is a docker-runtime engine's container, as gantry creates
	// it through the Docker Engine API (Argv is then the equivalent
	// `docker run`, for systemd units and for people to read); nil for a
	// native engine.
	Container *ContainerSpec
}

// ContainerSpec is a container as gantry asks the Docker Engine for it.
type ContainerSpec struct {
	// Name is gantry-<model>; labels, not the name, say what is gantry's.
	Name  string
	Image string
	// Argv is the engine's own command, program first (vllm serve …);
	// fitted to the image's entrypoint when the container is created.
	Argv []string
	// EntrypointArgs is true when Argv holds only what follows the
	// engine program, which the engine's images have as their entrypoint
	// (llama.cpp's server image, ollama/ollama).
	EntrypointArgs bool
	// Env is KEY=VALUE for the container: the model's env: (values go
	// through the API, never into argv or logs) and the planner's.
	Env []string
	// Mounts are the model folder (read-only) and the engine's cache.
	Mounts []Mount
	// Port is published on 127.0.0.1, the same number inside.
	Port int
	// GPUs: "all", "none", a count, or device IDs separated by commas.
	GPUs string
	// ShmSize is /dev/shm's size; IPCHost shares the host's IPC namespace
	// (the engines' NCCL and shared-memory tensors want one or the other).
	ShmSize int64
	IPCHost bool
	// Pull: "missing" pulls an absent image before the start, "never" fails.
	Pull string
	// StopTimeout is the grace before SIGKILL on a stop.
	StopTimeout time.Duration
}

// Mount is a bind mount of a host path.
type Mount struct {
	Source, Target string
	ReadOnly       bool
}

// Host facts the adapters need beyond the model's own config.
type Host struct {
	// Config is the whole config (root, engine settings).
	Config *config.Config
	// Self is the gantry executable, used to run `gantry sim`.
	Self string
	// NodeRank, when set, is the rank a model across nodes is told
	// instead of this box's place in nodes: — a reference the runtime
	// fills in, such as LeaderWorkerSet's $(LWS_WORKER_INDEX).
	NodeRank string
}

// Resources are what the planner decided for a model.
type Resources struct {
	// MemoryBytes is the model's reservation.
	MemoryBytes int64
	// Fraction is the engine's memory flag value ("" = pass none).
	Fraction string
	// Context is the context length to pass (0 = the engine's default).
	Context int64
	// ExtraArgs are flags the planner adds (before the model's args).
	ExtraArgs []string
	// KVCacheBytes is vLLM's --kv-cache-memory-bytes, MaxTotalTokens
	// SGLang's --max-total-tokens (0: pass none).
	KVCacheBytes, MaxTotalTokens int64
	// Env is environment the planner adds (KEY=VALUE); the model's env:
	// wins over it.
	Env []string
}

// Adapter is one engine's knowledge.
type Adapter interface {
	// Launch builds the process to run for the model.
	Launch(m *config.Model, h Host, r Resources) (Launch, error)
	// Probe asks the engine once whether it is ready to serve the model.
	Probe(ctx context.Context, c *http.Client, base string, m *config.Model) Readiness
}

// Readiness is the answer of one probe.
type Readiness struct {
	Ready bool
	// Phase says where a not-ready engine is: "not listening", "loading",
	// "warming up", "unhealthy".
	Phase string
	// Detail is what the engine said, trimmed, for the user.
	Detail string
}

// For returns the adapter of an engine name.
func For(engine string) (Adapter, error) {
	switch engine {
	case config.EngineSGLang:
		return sglang{}, nil
	case config.EngineVLLM:
		return vllm{}, nil
	case config.EngineTRTLLM:
		return trtllm{}, nil
	case config.EngineLlamaCpp:
		return llamacpp{}, nil
	case config.EngineOllama:
		return ollama{}, nil
	case config.EngineCommand:
		return command{}, nil
	case config.EngineSim:
		return sim{}, nil
	}
	return nil, fmt.Errorf("unknown engine %q", engine)
}

// Build is For(m.Engine).Launch(m, h) with the parts every engine shares:
// the model's env, args, the docker wrapping and the URLs.
func Build(m *config.Model, h Host, r Resources) (Launch, error) {
	a, err := For(m.Engine)
	if err != nil {
		return Launch{}, err
	}
	l, err := a.Launch(m, h, r)
	if err != nil {
		return Launch{}, fmt.Errorf("%s: %w", m.Name, err)
	}
	l.BaseURL = "http://127.0.0.1:" + strconv.Itoa(m.Port)
	for _, k := range sortedEnvKeys(m.Env) {
		l.Env = append(l.Env, k+"="+m.Env[k])
	}
	if m.Runtime != config.RuntimeDocker { // a container gets them as docker run -e
		l.Env = append(l.Env, plannedEnv(m, r)...)
	}
	if l.MetricsURL != "" {
		l.MetricsURL = l.BaseURL + l.MetricsURL
	}
	return l, nil
}

func sortedEnvKeys(env map[string]string) []string {
	ks := make([]string, 0, len(env))
	for k := range env {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// ContainerName is the docker container name of a model's engine.
func ContainerName(model string) string { return "gantry-" + model }

// dockerRun wraps an in-container argv into `docker run`. The model folder
// is mounted read-only at /model, the engine's cache folder at the image's
// cache path; the port is published on 127.0.0.1 only, since the gateway is
// the one door in.
func dockerRun(m *config.Model, h Host, mounts []string, env []string, inner []string) Launch {
	name := ContainerName(m.Name)
	port := strconv.Itoa(m.Port)
	argv := []string{"docker", "run", "--rm", "--name", name}
	if m.GPUs != "none" && m.GPUs != "" {
		argv = append(argv, "--gpus", m.GPUs)
	}
	argv = append(argv, "--ipc=host", "--shm-size", "16g",
		"-p", "127.0.0.1:"+port+":"+port)
	for _, v := range mounts {
		argv = append(argv, "-v", v)
	}
	for _, k := range sortedEnvKeys(m.Env) {
		argv = append(argv, "-e", k) // value comes from the docker client's env, never argv
	}
	for _, e := range env {
		argv = append(argv, "-e", e)
	}
	argv = append(argv, m.Image)
	argv = append(argv, inner...)
	stop := int(m.StopTimeout.D().Seconds())
	if stop < 1 {
		stop = 1
	}
	spec := &ContainerSpec{Name: name, Image: m.Image, Argv: inner, Port: m.Port, GPUs: m.GPUs,
		ShmSize: 16 << 30, IPCHost: true, Pull: m.Pull, StopTimeout: m.StopTimeout.D()}
	for _, k := range sortedEnvKeys(m.Env) {
		spec.Env = append(spec.Env, k+"="+m.Env[k])
	}
	spec.Env = append(spec.Env, env...)
	for _, v := range mounts {
		src, rest, _ := strings.Cut(v, ":")
		target, mode, _ := strings.Cut(rest, ":")
		spec.Mounts = append(spec.Mounts, Mount{Source: src, Target: target, ReadOnly: mode == "ro"})
	}
	return Launch{
		Argv:       argv,
		DockerName: name,
		PreStart:   []string{"docker", "rm", "-f", name},
		Stop:       []string{"docker", "stop", "-t", strconv.Itoa(stop), name},
		Container:  spec,
	}
}

// modelMounts returns the docker -v of the model folder (read-only at
// /model) and of the engine's cache, and the model path as seen inside.
func modelMounts(m *config.Model, h Host, cacheInside string) (mounts []string, inside string) {
	p := h.Config.ModelPath(m)
	mounts = []string{p + ":/model:ro", h.Config.CacheDir(m.Engine) + ":" + cacheInside}
	return mounts, "/model"
}

// HasFlag reports whether args already sets one of flags (as "--flag v"
// or "--flag=v"); an explicit flag in the model's args wins over ours.
func HasFlag(args []string, flags ...string) bool {
	for _, a := range args {
		for _, f := range flags {
			if a == f || strings.HasPrefix(a, f+"=") {
				return true
			}
		}
	}
	return false
}

// plannedEnv is the planner's environment less what the model sets.
func plannedEnv(m *config.Model, r Resources) []string {
	var out []string
	for _, kv := range r.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := m.Env[k]; !ok {
			out = append(out, kv)
		}
	}
	return out
}

// intFlag appends flag n unless n is 0 or the args set the flag.
func intFlag(argv []string, m *config.Model, flag string, n int64) []string {
	if n <= 0 || HasFlag(m.Args, flag) {
		return argv
	}
	return append(argv, flag, strconv.FormatInt(n, 10))
}

// memFlag appends the planned memory fraction (the plan leaves it empty
// when the user's args set the flag: theirs wins).
func memFlag(argv []string, m *config.Model, r Resources, flag string) []string {
	if r.Fraction == "" || HasFlag(m.Args, flag) {
		return argv
	}
	return append(argv, flag, r.Fraction)
}

// ctxFlag appends the planned context length unless the args set it.
func ctxFlag(argv []string, m *config.Model, r Resources, flags ...string) []string {
	if r.Context <= 0 || HasFlag(m.Args, flags...) {
		return argv
	}
	return append(argv, flags[0], strconv.FormatInt(r.Context, 10))
}

// userArgs are the planner's flags, then the model's own.
func userArgs(argv []string, m *config.Model, r Resources) []string {
	argv = append(argv, r.ExtraArgs...)
	return append(argv, m.Args...)
}

func binary(h Host, engine, def string) string {
	if es := h.Config.Engines[engine]; es != nil && es.Binary != "" {
		return es.Binary
	}
	return def
}

// probeHealth is the readiness rule of servers that answer 200 on a health
// path when ready: a refused connection means the process has not opened
// its port yet (vLLM, SGLang and trtllm-serve load before listening), a 503
// means loading or warming up (SGLang, llama-server's "Loading model").
func probeHealth(ctx context.Context, c *http.Client, url, notReadyPhase string) Readiness {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Readiness{Phase: "unhealthy", Detail: err.Error()}
	}
	resp, err := c.Do(req)
	if err != nil {
		if isRefused(err) {
			return Readiness{Phase: "not listening", Detail: "connection refused (still loading)"}
		}
		return Readiness{Phase: "not listening", Detail: shortErr(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return Readiness{Ready: true, Phase: "ready"}
	}
	detail := fmt.Sprintf("%s %s", resp.Status, oneLine(string(body)))
	if resp.StatusCode == http.StatusServiceUnavailable {
		return Readiness{Phase: notReadyPhase, Detail: strings.TrimSpace(detail)}
	}
	return Readiness{Phase: "unhealthy", Detail: strings.TrimSpace(detail)}
}

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

func shortErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// sglang is SGLang's launch_server.
type sglang struct{}

func (sglang) Launch(m *config.Model, h Host, r Resources) (Launch, error) {
	port := strconv.Itoa(m.Port)
	tail := func(path, host string) []string {
		a := []string{"-m", "sglang.launch_server", "--model-path", path,
			"--host", host, "--port", port, "--served-model-name", m.Name, "--enable-metrics"}
		a = ctxFlag(a, m, r, "--context-length")
		a = memFlag(a, m, r, "--mem-fraction-static")
		a = intFlag(a, m, "--max-total-tokens", r.MaxTotalTokens)
		a = append(a, nodeFlags(m, h)...)
		return userArgs(a, m, r)
	}
	if m.Runtime == config.RuntimeDocker {
		mounts, inside := modelMounts(m, h, "/root/.cache")
		l := dockerRun(m, h, mounts, plannedEnv(m, r), append([]string{"python3"}, tail(inside, "0.0.0.0")...))
		l.MetricsURL = "/metrics"
		return l, nil
	}
	argv := append([]string{binary(h, m.Engine, "python3")}, tail(h.Config.ModelPath(m), "127.0.0.1")...)
	return Launch{Argv: argv, MetricsURL: "/metrics"}, nil
}

func (sglang) Probe(ctx context.Context, c *http.Client, base string, m *config.Model) Readiness {
	return probeHealth(ctx, c, base+sglang{}.ReadyPath(m), "warming up")
}

func (sglang) ReadyPath(*config.Model) string { return "/health" }

// vllm is `vllm serve`.
type vllm struct{}

func (vllm) Launch(m *config.Model, h Host, r Resources) (Launch, error) {
	port := strconv.Itoa(m.Port)
	tail := func(path, host string) []string {
		a := []string{"serve", path, "--host", host, "--port", port, "--served-model-name", m.Name}
		a = ctxFlag(a, m, r, "--max-model-len")
		a = memFlag(a, m, r, "--gpu-memory-utilization")
		a = intFlag(a, m, "--kv-cache-memory-bytes", r.KVCacheBytes)
		a = append(a, nodeFlags(m, h)...)
		return userArgs(a, m, r)
	}
	if m.Runtime == config.RuntimeDocker {
		mounts, inside := modelMounts(m, h, "/root/.cache")
		l := dockerRun(m, h, mounts, plannedEnv(m, r), append([]string{"vllm"}, tail(inside, "0.0.0.0")...))
		l.MetricsURL = "/metrics"
		return l, nil
	}
	argv := append([]string{binary(h, m.Engine, "vllm")}, tail(h.Config.ModelPath(m), "127.0.0.1")...)
	return Launch{Argv: argv, MetricsURL: "/metrics"}, nil
}

func (vllm) Probe(ctx context.Context, c *http.Client, base string, m *config.Model) Readiness {
	if m.Follower() {
		// A headless rank serves no HTTP at all: running is all it says.
		return Readiness{Ready: true}
	}
	return probeHealth(ctx, c, base+vllm{}.ReadyPath(m), "loading")
}

func (vllm) ReadyPath(m *config.Model) string {
	if m.Follower() {
		return ""
	}
	return "/health"
}

// trtllm is TensorRT-LLM's trtllm-serve (PyTorch backend).
type trtllm struct{}

func (trtllm) Launch(m *config.Model, h Host, r Resources) (Launch, error) {
	port := strconv.Itoa(m.Port)
	tail := func(path, host string) []string {
		a := []string{path, "--host", host, "--port", port, "--backend", "pytorch", "--served_model_name", m.Name}
		a = ctxFlag(a, m, r, "--max_seq_len")
		a = memFlag(a, m, r, "--kv_cache_free_gpu_memory_fraction")
		return userArgs(a, m, r)
	}
	if m.Runtime == config.RuntimeDocker {
		mounts, inside := modelMounts(m, h, "/root/.cache")
		l := dockerRun(m, h, mounts, plannedEnv(m, r), append([]string{"trtllm-serve"}, tail(inside, "0.0.0.0")...))
		l.MetricsURL = "/metrics"
		return l, nil
	}
	argv := append([]string{binary(h, m.Engine, "trtllm-serve")}, tail(h.Config.ModelPath(m), "127.0.0.1")...)
	return Launch{Argv: argv, MetricsURL: "/metrics"}, nil
}

func (trtllm) Probe(ctx context.Context, c *http.Client, base string, m *config.Model) Readiness {
	return probeHealth(ctx, c, base+trtllm{}.ReadyPath(m), "loading")
}

func (trtllm) ReadyPath(*config.Model) string { return "/health" }

// llamacpp is llama.cpp's llama-server, serving one GGUF file.
type llamacpp struct{}

func (llamacpp) Launch(m *config.Model, h Host, r Resources) (Launch, error) {
	port := strconv.Itoa(m.Port)
	tail := func(path, host string) []string {
		a := []string{"-m", path, "--host", host, "--port", port, "--alias", m.Name, "--metrics"}
		if !HasFlag(m.Args, "-ngl", "--n-gpu-layers", "--gpu-layers") {
			a = append(a, "--n-gpu-layers", "999")
		}
		a = ctxFlag(a, m, r, "--ctx-size", "-c")
		return userArgs(a, m, r)
	}
	p := h.Config.ModelPath(m)
	if m.Runtime == config.RuntimeDocker {
		// The image's entrypoint is llama-server; mount the file's folder.
		mounts := []string{filepath.Dir(p) + ":/model:ro"}
		l := dockerRun(m, h, mounts, nil, tail("/model/"+filepath.Base(p), "0.0.0.0"))
		l.MetricsURL = "/metrics"
		l.Container.EntrypointArgs = true
		return l, nil
	}
	argv := append([]string{binary(h, m.Engine, "llama-server")}, tail(p, "127.0.0.1")...)
	return Launch{Argv: argv, MetricsURL: "/metrics"}, nil
}

func (llamacpp) Probe(ctx context.Context, c *http.Client, base string, m *config.Model) Readiness {
	return probeHealth(ctx, c, base+llamacpp{}.ReadyPath(m), "loading")
}

func (llamacpp) ReadyPath(*config.Model) string { return "/health" }

// ollama is `ollama serve`, which hosts the models itself; gantry keeps
// models loaded (OLLAMA_KEEP_ALIVE=-1) and decides when to unload them.
type ollama struct{}

// OllamaModelsDir is where gantry's `ollama serve` keeps its models.
func OllamaModelsDir(c *config.Config) string { return filepath.Join(c.Root, "models", "ollama") }

func (ollama) Launch(m *config.Model, h Host, r Resources) (Launch, error) {
	port := strconv.Itoa(m.Port)
	ctxLen := int(r.Context)
	if ctxLen == 0 {
		ctxLen = 8192 // recent Ollama picks 256K on big boxes; be explicit
	}
	env := func(host, models string) []string {
		return []string{"OLLAMA_HOST=" + host + ":" + port, "OLLAMA_MODELS=" + models,
			"OLLAMA_KEEP_ALIVE=-1", "OLLAMA_CONTEXT_LENGTH=" + strconv.Itoa(ctxLen)}
	}
	if m.Runtime == config.RuntimeDocker {
		mounts := []string{OllamaModelsDir(h.Config) + ":/root/.ollama/models"}
		l := dockerRun(m, h, mounts, env("0.0.0.0", "/root/.ollama/models"), append([]string{"serve"}, m.Args...))
		l.DockerName = "gantry-ollama"
		l.Container.EntrypointArgs = true
		l.PreStart[len(l.PreStart)-1] = l.DockerName
		l.Stop[len(l.Stop)-1] = l.DockerName
		l.Argv[slices.Index(l.Argv, ContainerName(m.Name))] = l.DockerName
		return l, nil
	}
	argv := append([]string{binary(h, m.Engine, "ollama"), "serve"}, m.Args...)
	return Launch{Argv: argv, Env: env("127.0.0.1", OllamaModelsDir(h.Config))}, nil
}

func (ollama) Probe(ctx context.Context, c *http.Client, base string, m *config.Model) Readiness {
	return probeHealth(ctx, c, base+ollama{}.ReadyPath(m), "loading")
}

func (ollama) ReadyPath(*config.Model) string { return "/api/version" }

// command is any OpenAI-compatible server the user names.
type command struct{}

func (command) Launch(m *config.Model, h Host, r Resources) (Launch, error) {
	if len(m.Command) == 0 {
		return Launch{}, errors.New("engine command needs command:")
	}
	argv := append(slices.Clone(m.Command), m.Args...)
	if m.Runtime == config.RuntimeDocker { // only as export's container form: the image's own server
		return dockerRun(m, h, nil, plannedEnv(m, r), argv), nil
	}
	return Launch{Argv: argv}, nil
}

func (command) Probe(ctx context.Context, c *http.Client, base string, m *config.Model) Readiness {
	return probeHealth(ctx, c, base+m.Health, "loading")
}

func (command) ReadyPath(m *config.Model) string { return m.Health }

// sim is gantry's simulated engine, `gantry sim`.
type sim struct{}

func (sim) Launch(m *config.Model, h Host, r Resources) (Launch, error) {
	self := h.Self
	if self == "" {
		self = "gantry"
	}
	argv := []string{self, "sim", "--port", strconv.Itoa(m.Port), "--model", m.Name}
	if m.Runtime == config.RuntimeDocker {
		// only as export's container form: an image with gantry on its PATH
		argv = []string{"gantry", "sim", "--host", "0.0.0.0", "--port", strconv.Itoa(m.Port), "--model", m.Name}
	}
	argv = append(argv, nodeFlags(m, h)...)
	argv = append(argv, m.Args...)
	if m.Runtime == config.RuntimeDocker {
		l := dockerRun(m, h, nil, plannedEnv(m, r), argv)
		l.MetricsURL = "/metrics"
		return l, nil
	}
	return Launch{Argv: argv, MetricsURL: "/metrics"}, nil
}

func (sim) Probe(ctx context.Context, c *http.Client, base string, m *config.Model) Readiness {
	return probeHealth(ctx, c, base+sim{}.ReadyPath(m), "loading")
}

func (sim) ReadyPath(m *config.Model) string {
	if FlagValue(m.Args, "--flavor") == "ollama" {
		return "/api/version"
	}
	return "/health"
}

// UsesGPU is false: the simulated engine computes nothing.
func (sim) UsesGPU() bool { return false }

// FlagValue returns the value args give flag ("--flag v" or
// "--flag=v"), "" when they do not set it.
func FlagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// nodeFlags are the engine's own multi-node flags for this box's rank of
// a model across nodes (none for a model on one box):
//
//   - SGLang: --nnodes N --node-rank R --dist-init-addr HOST:PORT (ranks ≥ 1
//     serve no API; they answer /health from a stand-in server once loaded:
//     launch_dummy_health_check_server in python/sglang/srt/entrypoints/engine.py).
//   - vLLM, its own multi-node launch without Ray (docs/serving/
//     parallelism_scaling.md, "Running vLLM with MultiProcessing"): --nnodes
//     N --node-rank R --master-addr HOST --master-port PORT, and --headless
//     on ranks ≥ 1.
//   - gantry sim: SGLang's flags.
func nodeFlags(m *config.Model, h Host) []string {
	if !m.MultiNode() {
		return nil
	}
	n, r := strconv.Itoa(len(m.Nodes)), strconv.Itoa(m.Rank())
	if h.NodeRank != "" {
		r = h.NodeRank
	}
	if m.Engine != config.EngineVLLM {
		return []string{"--nnodes", n, "--node-rank", r, "--dist-init-addr", m.DistInitAddr}
	}
	host, port, _ := strings.Cut(m.DistInitAddr, ":")
	if i := strings.LastIndex(m.DistInitAddr, ":"); i >= 0 {
		host, port = strings.Trim(m.DistInitAddr[:i], "[]"), m.DistInitAddr[i+1:]
	}
	f := []string{"--nnodes", n, "--node-rank", r, "--master-addr", host, "--master-port", port}
	if m.Follower() {
		f = append(f, "--headless")
	}
	return f
}

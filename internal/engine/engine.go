// Package engine is gantry's knowledge of each inference engine: one
// Descriptor per engine, each in its own file (sglang.go, vllm.go,
// trtllm.go, llamacpp.go, ollama.go, command.go, sim.go), holding
// everything gantry knows of it — its defaults (port, runtime, image),
// what a model of it must set, its command natively and its contract with
// its images, its readiness rule, its metrics, its load-progress lines,
// the failure signatures only it prints, how its memory and KV cache are
// sized, its multi-node flags and its version quirks.
//
// The rest of gantry asks the descriptor (Lookup) and never switches on
// an engine's name; internal/archtest fails on such a switch. The package
// sits below config: a descriptor takes plain values (Model), not the
// config's types, so that config asks it for defaults and validation and
// package launch (above config) turns a configured model into a Model,
// and the descriptor's command into a process or a container. Commands
// are argv lists: nothing here goes through a shell.
package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/diagnose"
	"github.com/gantryhq/gantry/internal/lazyre"
	"github.com/gantryhq/gantry/internal/progress"
)

// Runtimes: how an engine runs.
const (
	RuntimeNative = "native" // a process of gantry's
	RuntimeDocker = "docker" // a container, through the Docker Engine API
)

// Descriptor is all gantry knows of one engine. Its function fields are
// pure: they read only their arguments.
type Descriptor struct {
	// Name is the value of models.<name>.engine ("vllm").
	Name string
	// Title is how people write it ("vLLM").
	Title string
	// Order places it in lists shown to people (Names); lower first.
	Order int

	// Port is the engine's standard port (the seed's), which the first of
	// its models gets when no other holds it; 0: a port from port_range.
	Port int
	// Runtime is what a model of this engine runs as when it sets no
	// runtime: (RuntimeNative or RuntimeDocker).
	Runtime string
	// NativeOnly engines run natively only under gantry; their
	// Container form is for export (an image that holds the program).
	NativeOnly bool
	// Program is the program run natively when engines.<name>.binary is
	// unset ("" for engines whose model names its own command).
	Program string
	// Container is its contract with its images (zero for NativeOnly).
	Container Container

	// Files says what a model of this engine serves and must name.
	Files Files
	// Shared names the one server all of its models share (`ollama
	// serve`), on engines.<name>.port, which loads and unloads them
	// through Ollama's API (package ollama is their runner); "" when each
	// model runs its own.
	Shared string
	// TakesCommand engines run the model's command: as the server
	// (engine command), with its health: path (default /health).
	TakesCommand bool
	// SpansNodes engines run one model across several boxes on their own
	// multi-node launch (Command adds the flags for Model.Rank).
	SpansNodes bool
	// NoGPU engines compute nothing on a GPU (the simulated one).
	NoGPU bool
	// EmbeddingFlag, in a model's args, makes it serve embeddings rather
	// than generation ("" none; the model's files say it otherwise).
	EmbeddingFlag string

	// Command is the engine's command for m: argv with m.Program first
	// (when set) and the environment the engine needs. It fails only on a
	// model the config validation refuses.
	Command func(m Model) (Cmd, error)
	// Health is the engine's readiness rule for m (Probe asks it).
	Health func(m Model) Health
	// Metrics is where and under which names it exports its gauges.
	Metrics Metrics
	// Signatures are the failure signatures only it prints (those every
	// engine shares are in package diagnose); Signatures() gathers them.
	Signatures []diagnose.Signature
	// LoadLines are the milestones of its load in its own output (tqdm
	// bars are read for every engine); LoadProgress reads them all.
	LoadLines []progress.Milestone
	// Sim is how the simulated engine imitates it (`gantry sim --flavor`).
	Sim Imitation
	// Memory is how its memory and KV cache are sized from the plan.
	Memory Memory
	// Rules are its own engine × checkpoint × box rules.
	Rules []CheckpointRule
	// Renames are top-level parameters of an OpenAI request that its
	// OpenAI-compatible API ignores under their name but reads under
	// another: the gateway renames each in the body on its way to the
	// engine (Renamed). Empty for an engine that reads OpenAI's names: its
	// requests keep the gateway's zero-copy path.
	Renames []Rename
}

// Rename is a request parameter an engine reads under another name.
type Rename struct {
	// From is the name clients send (OpenAI's current one), To the one
	// the engine reads.
	From, To string
}

// Renamed is the Renames of the engine name (nil for one that has none,
// or an unknown one): a map read, cheap enough for every request.
func Renamed(name string) []Rename {
	if d := registry[name]; d != nil {
		return d.Renames
	}
	return nil
}

// Container is an engine's contract with its container images.
type Container struct {
	// Image is the pinned default image (never "latest": an engine
	// upgrade is a decision); engines.<name>.image overrides it.
	Image string
	// Program starts the container's command ("vllm", "python3"); ""
	// when the image's entrypoint is the program and the command is only
	// its arguments (llama.cpp's server image, ollama/ollama). At create
	// time the command is fitted to the image's real entrypoint (Fit).
	Program string
	// Mount is how the model's files are mounted at /model (read-only).
	Mount ModelMount
	// Cache is where the engine keeps its caches inside, on which
	// <root>/cache/<engine> is mounted; "" none.
	Cache string
	// Store is the engine's own model store inside (Model.Store), on
	// which <root>/models/<engine> is mounted read-write; "" none.
	Store string
	// PlanEnv: the planner's environment (PyTorch's allocator settings)
	// reaches the container. Images that run no PyTorch do not get it.
	PlanEnv bool
}

// ModelMount is how a model's files are mounted into a container.
type ModelMount int

// The ways a model's files are mounted.
const (
	MountNone       ModelMount = iota // the engine reads its own store
	MountFolder                       // the model folder at /model
	MountFileFolder                   // the file's folder at /model, the file at /model/<name>
)

// Files says what a model of an engine serves and must set.
type Files struct {
	// Formats are the checkpoint formats it loads ("safetensors",
	// "gguf"); empty: any (it does not read the files itself).
	Formats []string
	// NeedsPath: a model must set path:.
	NeedsPath bool
	// DefaultFor are the formats the seed serves with this engine when
	// nothing says otherwise (ForFormat).
	DefaultFor []string
	// TagExample, when set, is an engine-side model name (Ollama's tag):
	// a model sets model: (such a tag) or path:, and is served under it.
	TagExample string
	// DefaultContext: the planner gives it a context (the model's own
	// maximum, capped) when the model sets none.
	DefaultContext bool
}

// Model is one model as a descriptor sees it: the config's values,
// resolved by package launch (or by whoever builds an engine's command
// for another platform), paths as the engine sees them.
type Model struct {
	// Name is gantry's name of the model; the engine serves it so.
	Name string
	// Port is the engine's port, Host the address it binds: 127.0.0.1
	// natively, 0.0.0.0 inside a container.
	Port int
	Host string
	// Path is the model's files: a folder, or a GGUF file.
	Path string
	// Store is the engine's own model store (Container.Store; natively
	// <root>/models/<engine>).
	Store string
	// Program is the program to run ("" in a container whose entrypoint
	// is the program); Self is gantry's own executable.
	Program, Self string
	// Args are the model's args:; a flag set there wins over gantry's.
	Args []string
	// Command and HealthPath are engine command's command: and health:.
	Command    []string
	HealthPath string
	// Nodes is how many boxes the model spans (0 or 1: one), Rank this
	// box's place among them, DistInitAddr rank 0's host:port.
	Nodes, Rank  int
	DistInitAddr string
	// RankRef, when set, is told instead of Rank: a reference the runtime
	// fills in, such as LeaderWorkerSet's $(LWS_WORKER_INDEX).
	RankRef string
	// Plan is what the planner decided.
	Plan Resources
}

// MultiNode reports whether the model spans several boxes.
func (m Model) MultiNode() bool { return m.Nodes > 1 }

// Follower reports whether this box runs a rank other than 0.
func (m Model) Follower() bool { return m.MultiNode() && m.Rank > 0 }

// rank is the rank to tell the engine: RankRef, else Rank.
func (m Model) rank() string {
	if m.RankRef != "" {
		return m.RankRef
	}
	return strconv.Itoa(m.Rank)
}

// Cmd is an engine's command: argv, program first, and the environment
// (KEY=VALUE) it needs beyond the model's env:.
type Cmd struct {
	Argv []string
	Env  []string
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

// Metrics is where an engine exports Prometheus metrics and the names of
// the gauges gantry reports under its own names, each list in order of
// preference (an engine that renamed a gauge and exports both: the new
// name first).
type Metrics struct {
	// Path is the metrics endpoint ("" none).
	Path string
	// Running and Waiting are requests running and queued; KVUsage the
	// KV cache's use, 0 to 1.
	Running, Waiting, KVUsage []string
}

// Launch is everything the supervisor needs to run one engine process.
type Launch struct {
	// Argv is the program and its arguments.
	Argv []string
	// Env holds KEY=VALUE pairs added to gantry's own environment.
	Env []string
	// DockerName is the container's name in the `docker run` of Argv,
	// "" for a native process (one container serves every model of an
	// engine with a shared server: gantry-<engine>); the systemd unit
	// writer names it in its ExecStartPre and ExecStop.
	DockerName string
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

// ContainerName is the docker container name of a model's engine.
func ContainerName(model string) string { return "gantry-" + model }

// registry holds every descriptor, by name; each engine's file registers
// its own in an init function.
var registry = map[string]*Descriptor{}

func register(d *Descriptor) {
	if _, dup := registry[d.Name]; dup || d.Command == nil || d.Health == nil {
		panic("engine: a second or incomplete descriptor " + d.Name)
	}
	registry[d.Name] = d
}

// Lookup returns the descriptor of an engine name.
func Lookup(name string) (*Descriptor, error) {
	if d := registry[name]; d != nil {
		return d, nil
	}
	return nil, fmt.Errorf("unknown engine %q (one of %s)", name, strings.Join(Names(), ", "))
}

// Known reports whether name is an engine's.
func Known(name string) bool { return registry[name] != nil }

// All returns every descriptor, in display order.
func All() []*Descriptor {
	out := make([]*Descriptor, 0, len(registry))
	for _, d := range registry {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *Descriptor) int { return a.Order - b.Order })
	return out
}

// Names lists every engine name, in display order.
func Names() []string {
	var out []string
	for _, d := range All() {
		out = append(out, d.Name)
	}
	return out
}

// LoadProgress reads load progress in any engine's output: every
// engine's milestones, in display order (an engine's output may carry
// another's lines: Ollama runs llama.cpp; engine command runs anything).
var LoadProgress = sync.OnceValue(func() progress.Parser {
	var p progress.Parser
	for _, d := range All() {
		p = append(p, d.LoadLines...)
	}
	return p
})

// Signatures are every engine's own failure signatures, in display order,
// for diagnose.Context (a log may carry another engine's words: engine
// command runs anything, the simulated engine imitates them all).
var Signatures = sync.OnceValue(func() []diagnose.Signature {
	var out []diagnose.Signature
	for _, d := range All() {
		out = append(out, d.Signatures...)
	}
	return out
})

// milestone is one of an engine's LoadLines.
func milestone(pattern, phase string, fraction float64) progress.Milestone {
	return progress.Milestone{Pattern: lazyre.New(pattern), Phase: phase, Fraction: fraction}
}

// KeepsStore reports whether name is an engine that keeps its own model
// store, <root>/models/<engine> (Ollama's blobs): the models folder's
// inventory is not to read it as checkpoints.
func KeepsStore(name string) bool {
	d := registry[name]
	return d != nil && d.Container.Store != ""
}

// Serves reports whether the engine loads checkpoints of format (any
// when it lists none).
func (d *Descriptor) Serves(format string) bool {
	return len(d.Files.Formats) == 0 || slices.Contains(d.Files.Formats, format)
}

// ForFormat is the engine the seed serves a checkpoint of format with
// (SGLang for safetensors, llama.cpp for GGUF); a format no engine claims
// is taken for a Hugging Face checkpoint.
func ForFormat(format string) string {
	for _, f := range []string{format, "safetensors"} {
		for _, d := range All() {
			if slices.Contains(d.Files.DefaultFor, f) {
				return d.Name
			}
		}
	}
	return ""
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

// program is argv's start: the program when there is one.
func program(m Model, args ...string) []string {
	if m.Program == "" {
		return args
	}
	return append([]string{m.Program}, args...)
}

// intFlag appends flag n unless n is 0 or the args set the flag.
func intFlag(argv []string, m Model, flag string, n int64) []string {
	if n <= 0 || HasFlag(m.Args, flag) {
		return argv
	}
	return append(argv, flag, strconv.FormatInt(n, 10))
}

// memFlag appends the planned memory fraction (the plan leaves it empty
// when the user's args set the flag: theirs wins).
func memFlag(argv []string, m Model, flag string) []string {
	if m.Plan.Fraction == "" || HasFlag(m.Args, flag) {
		return argv
	}
	return append(argv, flag, m.Plan.Fraction)
}

// ctxFlag appends the planned context length unless the args set it.
func ctxFlag(argv []string, m Model, flags ...string) []string {
	if m.Plan.Context <= 0 || HasFlag(m.Args, flags...) {
		return argv
	}
	return append(argv, flags[0], strconv.FormatInt(m.Plan.Context, 10))
}

// userArgs are the planner's flags, then the model's own.
func userArgs(argv []string, m Model) []string {
	argv = append(argv, m.Plan.ExtraArgs...)
	return append(argv, m.Args...)
}

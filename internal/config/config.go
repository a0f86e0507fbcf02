// Package config turns gantry's YAML configuration into typed values with the
// seed's defaults, and checks it. Load never returns a half-checked config:
// every problem it or Validate finds names the key path and the line.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/lazyre"
	"go.yaml.in/yaml/v3"

	"github.com/gantryhq/gantry/internal/hfcache"
)

// Modes and runtimes.
const (
	ModeAlwaysOn = "always-on"
	ModeOnDemand = "on-demand"

	RuntimeNative = engine.RuntimeNative
	RuntimeDocker = engine.RuntimeDocker
)

// Config is the whole configuration file after defaults are applied.
type Config struct {
	Listen    string    `yaml:"listen" json:"listen"`
	Root      string    `yaml:"root" json:"root"`
	PortRange PortRange `yaml:"port_range" json:"port_range"`
	MaxBody   Size      `yaml:"max_body" json:"max_body"`
	// MaxBodyTotal caps the request bodies held in memory at once, all
	// requests together (default 256MiB): a burst of large or trickled
	// bodies gets 503s rather than the models' memory.
	MaxBodyTotal Size `yaml:"max_body_total" json:"max_body_total"`
	// AllowedHosts are Host names a loopback listener answers besides
	// loopback ones (a reverse proxy's or a container's name for the box).
	AllowedHosts []string `yaml:"allowed_hosts" json:"allowed_hosts,omitempty"`
	// CORS is gantry's own CORS policy; engines' CORS headers never pass.
	CORS CORS `yaml:"cors" json:"cors"`
	// OllamaAPI serves Ollama's API for every model on a listener of its
	// own; off when absent.
	OllamaAPI *OllamaAPI `yaml:"ollama_api" json:"ollama_api,omitempty"`
	// Activity is the activity log's retention.
	Activity Activity                   `yaml:"activity" json:"activity"`
	Memory   Memory                     `yaml:"memory" json:"memory"`
	Auth     Auth                       `yaml:"auth" json:"-"`
	Defaults Defaults                   `yaml:"defaults" json:"defaults"`
	Models   map[string]*Model          `yaml:"models" json:"models"`
	Engines  map[string]*EngineSettings `yaml:"engines" json:"engines"`
	Services map[string]*Service        `yaml:"services" json:"services"`
	Slots    map[string]*Slot           `yaml:"slots" json:"slots"`
	Profiles map[string]*Profile        `yaml:"profiles" json:"profiles"`
	// Presets are names clients may ask for, each served by a model with
	// request parameters set or stripped.
	Presets map[string]*Preset `yaml:"presets" json:"presets,omitempty"`
	// Peers are other gantry instances (other boxes) whose models this
	// one lists and relays to.
	Peers map[string]*Peer `yaml:"peers" json:"peers,omitempty"`
	// Hub is the Hugging Face Hub (or a mirror) fit and get read from.
	Hub Hub `yaml:"hub" json:"hub"`

	// Kubernetes is for `gantry export kubernetes`; serve ignores it.
	Kubernetes *Kubernetes `yaml:"kubernetes" json:"kubernetes,omitempty"`
	// Telemetry sends traces over OTLP; off when absent.
	Telemetry *Telemetry `yaml:"telemetry" json:"telemetry,omitempty"`

	// File is the path the config was read from ("" for the built-in demo).
	File string `yaml:"-" json:"file"`

	doc *yaml.Node // the parsed document, for line numbers
	// bad holds the key paths whose values did not decode: they get the
	// default, so one bad value is reported once, not again as a zero.
	bad map[string]bool
	// envRefs holds, by key path, each value as written when it names
	// ${env.X}: what export writes as a reference instead of the value.
	envRefs map[string]string
}

// Activity bounds the activity log (<root>/state/activity): records older
// than KeepDays go, and beyond the newest KeepRows. Either 0 turns the
// log off.
type Activity struct {
	KeepDays int `yaml:"keep_days" json:"keep_days"`
	KeepRows int `yaml:"keep_rows" json:"keep_rows"`
}

// On reports whether requests are recorded.
func (a Activity) On() bool { return a.KeepDays > 0 && a.KeepRows > 0 }

// OllamaAPI is the listener of Ollama's API.
type OllamaAPI struct {
	Listen string `yaml:"listen" json:"listen"`
}

// CORS says which web origins may call gantry from a browser.
type CORS struct {
	// AllowedOrigins are origins such as http://localhost:8080 ("*" for
	// any); none by default.
	AllowedOrigins []string `yaml:"allowed_origins" json:"allowed_origins"`
}

// Memory is the memory budget of the box.
type Memory struct {
	// Total is the memory engines may use; SizeAuto asks the GPU (or, on
	// unified-memory boxes, the system).
	Total Size `yaml:"total" json:"total"`
	// Reserve is kept free for the OS and everything else.
	Reserve Size `yaml:"reserve" json:"reserve"`
	// Unified says whether GPU and CPU share the memory: "auto" (ask
	// nvidia-smi: a GB10 does), "true" or "false". On unified memory gantry
	// evicts a model's checkpoint from the page cache before its start,
	// sizes total from what CUDA can get, and watches MemAvailable.
	Unified string `yaml:"unified" json:"unified"`
	// DropCaches: on unified memory, before a start, sync and drop every
	// clean cache (root only) besides the model's own pages.
	DropCaches bool `yaml:"drop_caches" json:"drop_caches"`
	// Watchdog is the MemAvailable floor on unified memory: below it while
	// an engine loads, gantry stops the newest load. 0 turns it off.
	Watchdog Size `yaml:"watchdog" json:"watchdog"`
}

// UnifiedOn resolves memory.unified against what the box says.
func (m Memory) UnifiedOn(detected bool) bool {
	switch m.Unified {
	case "true":
		return true
	case "false":
		return false
	}
	return detected
}

// Auth holds the keys of the gateway and the admin API: the lists (whose
// keys are named "key 1", "admin key 1" …) and the named keys.
type Auth struct {
	APIKeys   []string        `yaml:"api_keys"`
	AdminKeys []string        `yaml:"admin_keys"`
	Keys      map[string]*Key `yaml:"keys"`
}

// Defaults apply to every model that does not set its own value.
type Defaults struct {
	IdleTimeout  Duration `yaml:"idle_timeout" json:"idle_timeout"`
	StartTimeout Duration `yaml:"start_timeout" json:"start_timeout"`
	StopTimeout  Duration `yaml:"stop_timeout" json:"stop_timeout"`
	// QueueLimit caps the requests waiting for a model that is not ready.
	QueueLimit int `yaml:"queue_limit" json:"queue_limit"`
	// HealthInterval is how often a ready engine's health is checked, and
	// HealthFailures how many failed checks in a row restart it.
	HealthInterval Duration `yaml:"health_interval" json:"health_interval"`
	HealthFailures int      `yaml:"health_failures" json:"health_failures"`
	// AbandonedLoads says what happens to a load whose every waiting
	// request went away: "continue" (default; the next request finds it
	// ready) or "cancel" (stop it and free the memory).
	AbandonedLoads string `yaml:"abandoned_loads" json:"abandoned_loads"`
}

// Model is one entry of models:. Name is the key it is listed under.
type Model struct {
	Name         string            `yaml:"-" json:"name"`
	Engine       string            `yaml:"engine" json:"engine"`
	Path         string            `yaml:"path" json:"path,omitempty"`
	Model        string            `yaml:"model" json:"model,omitempty"` // an engine-side name, e.g. an Ollama tag
	Port         int               `yaml:"port" json:"port"`
	Mode         string            `yaml:"mode" json:"mode"`
	Aliases      []string          `yaml:"aliases" json:"aliases,omitempty"`
	Args         []string          `yaml:"args" json:"args,omitempty"`
	Env          map[string]string `yaml:"env" json:"-"`
	Runtime      string            `yaml:"runtime" json:"runtime"`
	Image        string            `yaml:"image" json:"image,omitempty"`
	Memory       Size              `yaml:"memory" json:"memory"`
	Context      int               `yaml:"context" json:"context,omitempty"`
	Concurrency  int               `yaml:"concurrency" json:"concurrency,omitempty"`
	IdleTimeout  Duration          `yaml:"idle_timeout" json:"idle_timeout"`
	StartTimeout Duration          `yaml:"start_timeout" json:"start_timeout"`
	StopTimeout  Duration          `yaml:"stop_timeout" json:"stop_timeout"`
	Fallback     string            `yaml:"fallback" json:"fallback,omitempty"`
	Slot         string            `yaml:"slot" json:"slot,omitempty"`
	Command      []string          `yaml:"command" json:"command,omitempty"`
	Health       string            `yaml:"health" json:"health,omitempty"`
	QueueLimit   int               `yaml:"queue_limit" json:"queue_limit"`
	// MaxConcurrency caps the requests in flight on the model's engine;
	// the rest wait in its queue (interactive ones first). 0: no cap.
	MaxConcurrency int `yaml:"max_concurrency" json:"max_concurrency,omitempty"`
	// HealthInterval and HealthFailures override defaults: (liveness).
	HealthInterval Duration `yaml:"health_interval" json:"health_interval"`
	HealthFailures int      `yaml:"health_failures" json:"health_failures"`
	AbandonedLoads string   `yaml:"abandoned_loads" json:"abandoned_loads"`

	// LoadingMessage shows a short visible note in a streamed chat answer
	// while the model loads ("loading qwen3-32b: 45% …").
	LoadingMessage bool `yaml:"loading_message" json:"loading_message,omitempty"`

	// GPUs are the GPUs a container gets: "all" (default), "none", a
	// count, or device IDs separated by commas.
	GPUs string `yaml:"gpus" json:"gpus,omitempty"`
	// Pull says when gantry pulls the container's image: "never" (the
	// default: a missing image fails the start, `gantry pull` fetches it)
	// or "missing".
	Pull string `yaml:"pull" json:"pull,omitempty"`

	// Listen is an address gantry itself serves this model on, with the
	// whole gateway API (the seed's own address, e.g. 0.0.0.0:30000):
	// every request there goes to this model. The engine runs on its own
	// port on loopback.
	Listen string `yaml:"listen" json:"listen,omitempty"`

	// Prefer is where a model configured here and on a peer starts when
	// neither has it ready: "local" (default) or a peer's name. The other
	// box is the failover.
	Prefer string `yaml:"prefer" json:"prefer,omitempty"`

	// Nodes spread one model over several boxes on the engine's own
	// multi-node launch: "local" and peers' names, in rank order. The box
	// listed first leads: it starts the other ranks through their gantry,
	// serves the requests and stops the group when a rank dies. Each box
	// lists the model with the same nodes (from its own point of view).
	Nodes []string `yaml:"nodes" json:"nodes,omitempty"`
	// DistInitAddr is rank 0's host:port as the other nodes reach it
	// (SGLang's --dist-init-addr, vLLM's --master-addr/--master-port).
	DistInitAddr string `yaml:"dist_init_addr" json:"dist_init_addr,omitempty"`

	// PortAssigned is true when gantry picked the port (none was configured).
	PortAssigned bool `yaml:"-" json:"port_assigned,omitempty"`
}

// EngineSettings are engine-wide settings under engines.<engine>.
type EngineSettings struct {
	Binary string `yaml:"binary" json:"binary,omitempty"`
	Image  string `yaml:"image" json:"image,omitempty"`
	// Pull is the engine's models' default for models.<name>.pull.
	Pull string `yaml:"pull" json:"pull,omitempty"`
	Port int    `yaml:"port" json:"port,omitempty"`
	// Overhead is what the engine needs beyond weights and KV cache, for
	// estimates (default per engine).
	Overhead Size `yaml:"overhead" json:"overhead,omitempty"`
}

// Service is an auxiliary service (Open WebUI, say) that gantry watches.
type Service struct {
	URL string `yaml:"url" json:"url"`
}

// Slot is a port shared by several models, one at a time.
type Slot struct {
	Port    int    `yaml:"port" json:"port"`
	Default string `yaml:"default" json:"default,omitempty"`
	// MinResidency is how long a member stays loaded, while it has waiting
	// requests, before another member may take the slot: rapid alternation
	// must not thrash. Default 30s.
	MinResidency Duration `yaml:"min_residency" json:"min_residency"`
	// DuringSwitch says what happens to new requests for the member being
	// switched away: "wait" (default) queues them, "refuse" answers 503.
	DuringSwitch string `yaml:"during_switch" json:"during_switch"`
	// Listen is an address gantry serves the slot on: a member's name
	// switches the slot to it, any other name (or none) goes to the
	// current member, or the default when the slot is empty.
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// RestoreDefault starts the default member again when another member
	// idles out (default true); DefaultAfter waits that long first.
	RestoreDefault *bool    `yaml:"restore_default" json:"restore_default"`
	DefaultAfter   Duration `yaml:"default_after" json:"default_after"`
	// PortAssigned is true when gantry picked the port (the slot has a
	// listen and no port).
	PortAssigned bool `yaml:"-" json:"port_assigned,omitempty"`
}

// Restores reports whether the slot's default comes back when another
// member idles out.
func (s *Slot) Restores() bool {
	return s.Default != "" && (s.RestoreDefault == nil || *s.RestoreDefault)
}

// Preset is a name clients may ask for: model M serves it, with the
// request's parameters in set applied (objects are merged) and those in
// strip removed before the request reaches the engine.
type Preset struct {
	Model string         `yaml:"model" json:"model"`
	Set   map[string]any `yaml:"set" json:"set,omitempty"`
	Strip []string       `yaml:"strip" json:"strip,omitempty"`
	// LoadingMessage shows a short note in a streamed chat answer while
	// the model loads (as models.<name>.loading_message).
	LoadingMessage bool `yaml:"loading_message" json:"loading_message,omitempty"`
}

// Profile is a named set of models that are always-on while it is active.
type Profile struct {
	AlwaysOn []string `yaml:"always_on" json:"always_on"`
}

// Seed defaults.
const (
	DefaultListen = "127.0.0.1:4000"
	DefaultRoot   = "~/ai"
)

// DefaultRuntime is the runtime an engine gets when a model sets none
// (its descriptor's: the seed runs SGLang, vLLM and TensorRT-LLM as
// containers).
func DefaultRuntime(eng string) string {
	if d, err := engine.Lookup(eng); err == nil {
		return d.Runtime
	}
	return RuntimeNative
}

// DefaultPath is where the config is looked for when neither --config nor
// $GANTRY_CONFIG names one.
func DefaultPath() string {
	return filepath.Join(ExpandHome(DefaultRoot), "configs", "gantry", "gantry.yaml")
}

// ErrNotFound is returned (wrapped) by Load when the config file does not exist.
var ErrNotFound = errors.New("config file not found")

// Load reads, expands, decodes and checks the config file at path. On any
// problem it returns nil and a Problems error listing all of them.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// LoadKeepingUnsetEnv is Load for verbs that write ${env.X} references
// elsewhere rather than use their values (export kubernetes): a variable
// that is not set stays as written instead of being a problem.
func LoadKeepingUnsetEnv(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return parseChecked(path, data, true)
}

// Parse is Load on bytes already read; name is used in messages.
func Parse(name string, data []byte) (*Config, error) {
	return parseChecked(name, data, false)
}

func parseChecked(name string, data []byte, keepUnset bool) (*Config, error) {
	c, probs := parseAll(name, data, keepUnset)
	if probs.Errors() > 0 {
		return nil, probs
	}
	return c, nil
}

// ParseAll is Parse for a validator: it returns what could be decoded
// even when there are problems (nil only when the text is not YAML at
// all), and every problem, warnings included. A model with a problem of
// its own (ModelProblems) may be half decoded; the others are whole.
func ParseAll(name string, data []byte) (*Config, Problems) {
	return parseAll(name, data, false)
}

func parseAll(name string, data []byte, keepUnset bool) (*Config, Problems) {
	c, probs := parse(name, data, keepUnset)
	if c != nil {
		// Validate even after decoding problems: a user fixing a config
		// wants every problem in one go, not one per run.
		probs = append(probs, c.Validate()...)
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	}
	return c, probs
}

// ModelProblems reports whether probs has an error under models.<name>
// (the model's own keys, its ${env.X} values included).
func (p Problems) ModelProblems(name string) bool { return p.Under("models." + name) }

// Under reports whether probs has an error at the key path key (dotted,
// as Problem.Path) or below it: a value that may be half decoded.
func (p Problems) Under(key string) bool {
	for _, q := range p {
		if !q.Warning && (q.Path == key || strings.HasPrefix(q.Path, key+".")) {
			return true
		}
	}
	return false
}

// ParseUnchecked decodes and applies defaults but does not run Validate; the
// returned Problems hold syntax and decoding errors only.
func parse(name string, data []byte, keepUnset bool) (*Config, Problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{{File: name, Line: yamlErrLine(err), Msg: cleanYAMLErr(err)}}
	}
	c := &Config{File: name, doc: &doc}
	if len(doc.Content) == 0 { // empty file
		c.applyDefaults()
		return c, nil
	}
	root := doc.Content[0]
	var probs Problems
	c.envRefs = map[string]string{}
	expandEnv(root, nil, envCtx{file: name, probs: &probs, refs: c.envRefs, keepUnset: keepUnset})
	checkKeys(root, typeOfConfig, nil, name, &probs)
	if err := root.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, append(probs, Problem{File: name, Line: yamlErrLine(err), Msg: cleanYAMLErr(err)})
		}
		if len(probs) == 0 { // else checkKeys said the same, with key paths
			for _, e := range te.Errors {
				probs = append(probs, Problem{File: name, Line: yamlErrLine(errors.New(e)), Msg: cleanYAMLErr(errors.New(e))})
			}
		}
	}
	c.bad = map[string]bool{}
	for _, p := range probs {
		c.bad[p.Path] = true
	}
	c.applyDefaults()
	return c, probs
}

var lineRE = lazyre.New(`line (\d+):?\s*`)

func yamlErrLine(err error) int {
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func cleanYAMLErr(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = lineRE.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "unmarshal errors:\n  ", "")
	return strings.TrimSpace(s)
}

var envRE = lazyre.New(`\$\$?\{env\.([^}]*)\}`)

// envCtx is what expandEnv reports to: the problems, the references by
// key path, and whether an unset variable may stay as written.
type envCtx struct {
	file      string
	probs     *Problems
	refs      map[string]string
	keepUnset bool
}

// expandEnv replaces ${env.NAME} in every scalar value with the variable's
// value; an unset variable is a problem (not silently ""), unless
// keepUnset, when it stays as written. $${env.X} is a literal ${env.X}.
func expandEnv(n *yaml.Node, path []string, ec envCtx) {
	file, probs := ec.file, ec.probs
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], append(path, n.Content[i].Value), ec)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandEnv(c, append(path, strconv.Itoa(i)), ec)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "{env.") {
			return
		}
		if ec.refs != nil {
			ec.refs[strings.Join(path, ".")] = n.Value
		}
		n.Value = envRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			if strings.HasPrefix(m, "$$") {
				return m[1:]
			}
			name := envRE.FindStringSubmatch(m)[1]
			if !validEnvName(name) {
				*probs = append(*probs, Problem{File: file, Line: n.Line, Path: strings.Join(path, "."), Msg: fmt.Sprintf("%s: %q is not a valid variable name", m, name)})
				return m
			}
			v, ok := os.LookupEnv(name)
			if !ok && ec.keepUnset {
				return m
			}
			if !ok {
				*probs = append(*probs, Problem{File: file, Line: n.Line, Path: strings.Join(path, "."), Msg: fmt.Sprintf("%s: environment variable %s is not set", m, name)})
				return m
			}
			return v
		})
		// Let the decoder resolve the expanded text afresh, so that
		// port: "${env.PORT}" can become a number.
		n.Tag, n.Style = "", 0
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}

// ExpandHome replaces a leading ~ with the user's home directory.
func ExpandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

// ModelNames returns the configured model names, sorted.
func (c *Config) ModelNames() []string {
	names := make([]string, 0, len(c.Models))
	for n := range c.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ListenPort is the port of listen, or 0 if it has none.
func (c *Config) ListenPort() int {
	_, p, err := splitHostPort(c.Listen)
	if err != nil {
		return 0
	}
	return p
}

// Resolve returns the model a name or alias refers to, or nil.
func (c *Config) Resolve(name string) *Model {
	if m, ok := c.Models[name]; ok {
		return m
	}
	for _, m := range c.Models {
		for _, a := range m.Aliases {
			if a == name {
				return m
			}
		}
	}
	return nil
}

// ModelPath is the absolute path of the model's files: path as written when
// absolute, else relative to <root>/models. "" when the model has no path.
func (c *Config) ModelPath(m *Model) string {
	if m.Path == "" {
		return ""
	}
	if hfcache.IsRef(m.Path) {
		host, inside := c.ModelMount(m)
		return filepath.Join(host, inside)
	}
	p := ExpandHome(m.Path)
	if !PathUnderRoot(m.Path) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.Root, "models", p)
}

// PathUnderRoot reports whether a model's path: is relative to
// <root>/models (not absolute, not under ~, not a Hugging Face cache
// reference): only then does ModelPath depend on root:.
func PathUnderRoot(path string) bool {
	return path != "" && !hfcache.IsRef(path) && !filepath.IsAbs(ExpandHome(path))
}

// ModelMount is what a container of the model mounts (host) and where
// the model is below it (inside, "" for host itself): a snapshot of the
// Hugging Face cache (path: hf:org/name[@rev][/file]) needs its whole
// repository folder, whose blobs/ its files link into. A revision not in
// the cache gives a path that does not exist (the planner says so, with
// what to do).
func (c *Config) ModelMount(m *Model) (host, inside string) {
	if !hfcache.IsRef(m.Path) {
		return c.ModelPath(m), ""
	}
	cache := hfcache.Dir(os.Getenv)
	r, err := hfcache.ParseRef(m.Path)
	if err != nil {
		return filepath.Join(cache, "(bad hf: path)"), ""
	}
	repoDir := filepath.Join(cache, hfcache.RepoFolder(r.Repo))
	p, err := hfcache.Resolve(cache, r)
	if err != nil {
		return repoDir, filepath.Join("snapshots", r.Rev, filepath.FromSlash(r.File))
	}
	rel, err := filepath.Rel(repoDir, p)
	if err != nil {
		return p, ""
	}
	return repoDir, rel
}

// LogPath is where the model's engine output is written.
func (c *Config) LogPath(m *Model) string {
	return filepath.Join(c.Root, "logs", m.Engine, m.Name+".log")
}

// CacheDir is the engine's cache folder, <root>/cache/<engine>.
func (c *Config) CacheDir(engine string) string {
	return filepath.Join(c.Root, "cache", engine)
}

// ServedName is the name the engine knows the model by: an engine-side
// name in model: (Ollama's tag) when its engine takes one and it is set,
// else the gantry name (engines get it as their served-model-name).
func (m *Model) ServedName() string {
	if d, _ := engine.Lookup(m.Engine); d != nil && d.Files.TagExample != "" && m.Model != "" {
		return m.Model
	}
	return m.Name
}

// AlwaysOn reports whether the model is configured always-on.
func (m *Model) AlwaysOn() bool { return m.Mode == ModeAlwaysOn }

// SecretName reports whether a variable or flag name suggests a secret
// (KEY, TOKEN, SECRET, PASSWORD): its value is never shown.
func SecretName(s string) bool {
	u := strings.ToUpper(s)
	for _, w := range []string{"KEY", "TOKEN", "SECRET", "PASSWORD"} {
		if strings.Contains(u, w) {
			return true
		}
	}
	return false
}

// Redactor replaces the config's secrets — API, admin and named keys, and env
// values whose names say KEY, TOKEN, SECRET or PASSWORD — with ***, for
// every text gantry writes or shows (engine logs, status, events).
func Redactor(c *Config) *strings.Replacer {
	var pairs []string
	add := func(v string) {
		if len(v) >= 4 { // shorter values would blank out ordinary words
			pairs = append(pairs, v, "***")
		}
	}
	for _, k := range c.Auth.APIKeys {
		add(k)
	}
	for _, k := range c.Auth.AdminKeys {
		add(k)
	}
	for _, k := range c.Auth.Keys {
		if k != nil {
			add(k.Key)
		}
	}
	for _, m := range c.Models {
		for k, v := range m.Env {
			if SecretName(k) {
				add(v)
			}
		}
	}
	return strings.NewReplacer(pairs...)
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/status"
)

// Check is one line of `gantry doctor`.
type Check struct {
	Area    string `json:"area"`
	Status  string `json:"status"` // ok | warn | fail
	Message string `json:"message"`
}

func runDoctor(e *env, args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	checks := doctor(e.ctx, cf)
	failed := false
	for _, c := range checks {
		failed = failed || c.Status == "fail"
	}
	if *asJSON {
		if err := writeJSON(e.stdout, checks); err != nil {
			return err
		}
	} else {
		for _, c := range checks {
			fmt.Fprintf(e.stdout, "%-4s  %-8s %s\n", c.Status, c.Area, c.Message)
		}
	}
	if failed {
		return &ExitError{Code: 1, Err: errors.New("doctor found problems (lines marked fail)")}
	}
	return nil
}

func doctor(ctx context.Context, cf clientFlags) []Check {
	var out []Check
	add := func(area, status, format string, args ...any) {
		out = append(out, Check{area, status, fmt.Sprintf(format, args...)})
	}
	// The same validation as `gantry config validate`, then what only the
	// live machine can tell.
	path, explicit := configPath(cf.config)
	c, probs, err := validate(ctx, path)
	demo := false
	switch {
	case errors.Is(err, config.ErrNotFound) && !explicit:
		add("config", "warn", "no config at %s: `gantry serve` runs the demo; `gantry init` writes a starter config", path)
		c, demo = config.Demo(), true
	case err != nil:
		add("config", "fail", "%v", err)
		c = config.Demo()
	case probs.Errors() > 0:
		for _, p := range probs {
			if !p.Warning {
				add("config", "fail", "%s", p)
			}
		}
		add("config", "fail", "%s: %d problem(s) (gantry config validate lists them)", path, probs.Errors())
		if c == nil {
			c = config.Demo()
		}
	default:
		add("config", "ok", "%s: valid (%d models, %d warnings)", path, len(c.Models), len(probs))
	}
	box := localBox(ctx, c)
	f := box.Facts
	switch {
	case len(f.GPUs) == 0:
		add("gpu", "warn", "no NVIDIA GPU found (%s): only sim and CPU engines will run", firstNonEmpty(f.Err, "nvidia-smi gave nothing"))
	default:
		for _, g := range f.GPUs {
			mem := "memory unknown"
			if g.MemoryTotal != nil {
				mem = config.FormatBytes(*g.MemoryTotal)
			} else if g.Unified {
				mem = "unified memory (nvidia-smi reports [N/A]; /proc/meminfo is used)"
			}
			add("gpu", "ok", "%d: %s, driver %s, compute capability %s, %s", g.Index, g.Name, g.Driver, orDash(g.ComputeCap), mem)
		}
	}
	src := f.Source
	if c.Memory.Total > 0 {
		src = "memory.total in the config"
	}
	if box.Total > 0 {
		add("memory", "ok", "%s total from %s; budget %s after reserve %s", config.FormatBytes(box.Total), src,
			config.FormatBytes(box.Budget), c.Memory.Reserve)
	} else {
		add("memory", "fail", "the memory total is unknown (%s): set memory.total", f.Source)
	}
	if mi := f.Memory; f.Unified && mi != nil {
		// What the kernel says and what CUDA sees differ on unified memory:
		// the page cache is reclaimable for one, used for the other.
		floor := mi.Total - box.Total
		add("unified", "ok", "MemTotal %s, MemAvailable %s, page cache %s; CUDA would report %s free (MemFree: it counts the page cache as used); engines can get %s, the floor kept for the OS and driver %s",
			config.FormatBytes(mi.Total), config.FormatBytes(mi.Available), config.FormatBytes(mi.Cached),
			config.FormatBytes(mi.CUDAFree()), config.FormatBytes(box.Total), config.FormatBytes(floor))
		wd := "off (memory.watchdog: 0)"
		if c.Memory.Watchdog > 0 {
			wd = "stops the newest load below MemAvailable " + c.Memory.Watchdog.String()
		}
		drop := "the model's own checkpoint pages are evicted before each start"
		if c.Memory.DropCaches {
			drop += "; memory.drop_caches: all clean caches too"
			if os.Geteuid() != 0 {
				add("unified", "warn", "memory.drop_caches needs root; gantry runs as uid %d and will only evict the model's own pages", os.Geteuid())
			}
		}
		add("unified", "ok", "%s; the watchdog %s", drop, wd)
	}
	// docker, for models that run in containers
	var images []string
	for _, n := range c.ModelNames() {
		if m := c.Models[n]; m.Runtime == config.RuntimeDocker {
			images = append(images, m.Image)
		}
	}
	if len(images) > 0 {
		doctorImages(ctx, add, uniq(images))
	}
	// engine programs for native models
	self, _ := os.Executable()
	for _, n := range c.ModelNames() {
		m := c.Models[n]
		if m.Runtime != config.RuntimeNative {
			continue
		}
		l, err := launch.Build(m, launch.Host{Config: c, Self: self}, engine.Resources{})
		if err != nil {
			add("engine", "fail", "%s: %v", n, err)
			continue
		}
		if p, err := exec.LookPath(l.Argv[0]); err != nil {
			add("engine", "fail", "%s: %s is not installed (set engines.%s.binary, or runtime: docker)", n, l.Argv[0], m.Engine)
		} else {
			add("engine", "ok", "%s: %s", n, p)
		}
	}
	// ports
	var live *status.Status
	if st, err := cf.status(ctx); err == nil {
		live = &st
	}
	running := map[int]string{}
	if live != nil {
		for _, m := range live.Models {
			if m.State != "stopped" {
				running[m.Port] = m.Name
			}
		}
	}
	ports := map[int]string{c.ListenPort(): "listen (gantry)"}
	for _, n := range c.ModelNames() {
		ports[c.Models[n].Port] = "models." + n
	}
	var plist []int
	for p := range ports {
		plist = append(plist, p)
	}
	sort.Ints(plist)
	for _, p := range plist {
		if p <= 0 {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		switch {
		case err == nil:
			ln.Close()
		case p == c.ListenPort() && live != nil:
			add("port", "ok", "%d: gantry is serving here", p)
		case running[p] != "":
			add("port", "ok", "%d: %s is running there", p, running[p])
		default:
			add("port", "warn", "%d (%s) is held by another process: starting there will fail (ss -ltnp 'sport = :%d' names it)", p, ports[p], p)
		}
	}
	// the root tree
	missing := []string{}
	for _, d := range rootTree {
		if !fileExists(filepath.Join(c.Root, d)) {
			missing = append(missing, d)
		}
	}
	if demo {
		// the demo's root is a temporary folder; nothing to check
	} else if len(missing) > 0 {
		add("root", "warn", "%s lacks %s: run `gantry init`", c.Root, strings.Join(missing, ", "))
	} else {
		add("root", "ok", "%s", c.Root)
	}
	// known-bad combinations
	plans := plan.Make(c, box, nil)
	for _, n := range c.ModelNames() {
		for _, fd := range plans[n].Findings {
			st := "warn"
			if fd.Level == plan.LevelError {
				st = "fail"
			}
			add("model", st, "%s: %s — %s", n, fd.Reason, fd.Fix)
		}
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func firstLine(out string, err error) string {
	s := strings.TrimSpace(out)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	if s == "" {
		return err.Error()
	}
	return s
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// rootTree is the seed's folder layout under ~/ai.
var rootTree = []string{
	"models/llama4", "models/qwen3", "models/deepseek", "models/phi4", "models/embeddings",
	"servers/sglang", "servers/vllm", "servers/tensorrt",
	"configs/sglang", "configs/vllm", "configs/huggingface", "configs/docker", "configs/gantry",
	"scripts/download", "scripts/serve", "scripts/update", "scripts/system",
	"logs/sglang", "logs/vllm", "logs/models",
	"projects/rag", "projects/agents", "projects/pipelines",
	"cache/huggingface", "cache/sglang", "cache/vllm",
}

func runInit(e *env, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	root := fs.String("root", config.DefaultRoot, "the tree to create")
	cfgOut := fs.String("config", "", "where to write the starter config (default <root>/configs/gantry/gantry.yaml)")
	force := fs.Bool("force", false, "overwrite an existing config")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("gantry init takes no arguments (use --root)")
	}
	r := config.ExpandHome(*root)
	for _, d := range rootTree {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	fmt.Fprintf(e.stdout, "created the tree under %s\n", r)
	path := *cfgOut
	if path == "" {
		path = filepath.Join(r, "configs", "gantry", "gantry.yaml")
	}
	if fileExists(path) && !*force {
		fmt.Fprintf(e.stdout, "%s exists; left as it is (--force writes a new one)\n", path)
		return nil
	}
	text, n, err := starterConfig(e.ctx, r)
	if err != nil {
		return err
	}
	if _, err := config.Parse(path, []byte(text)); err != nil {
		return fmt.Errorf("the starter config gantry wrote does not validate (a bug): %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s with %d model(s) found under %s/models; check it with `gantry config validate --config %s`\n", path, n, r, path)
	return nil
}

// starterConfig writes a config for the models found under root/models:
// each on demand, on the seed's engine for its format, with its estimate as
// a comment.
func starterConfig(ctx context.Context, root string) (string, int, error) {
	c := config.Demo()
	c.Root = root
	c.Models = map[string]*config.Model{}
	rows, err := plan.Inventory(c, localBox(ctx, c), nil)
	if err != nil {
		return "", 0, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `gantry init` on %s. Edit freely; `gantry config validate` checks it.\n", time.Now().Format("2006-01-02"))
	fmt.Fprintf(&b, "listen: 127.0.0.1:4000\nroot: %s\nmemory:\n  total: auto\n  reserve: 8GiB\n", yamlQuote(root))
	b.WriteString("defaults:\n  idle_timeout: 15m\n  start_timeout: 15m\n  stop_timeout: 30s\nmodels:\n")
	n := 0
	names := map[string]bool{}
	for _, r := range rows {
		if r.Inventory == nil || len(r.Inventory.Problems) > 0 || r.Inventory.WeightBytes == 0 {
			continue
		}
		name := modelKey(r.Name, names)
		eng := plan.GuessEngine(r.Inventory)
		fmt.Fprintf(&b, "  %s:   # %s, %s weights, estimate %s\n", name, r.Inventory.Quant, config.FormatBytes(r.SizeBytes), config.FormatBytes(r.Estimate))
		fmt.Fprintf(&b, "    engine: %s\n    path: %s\n", eng, yamlQuote(r.Name))
		n++
	}
	if n == 0 {
		b.WriteString("  # No models were found under models/. A simulated one, to try gantry:\n")
		b.WriteString("  demo: {engine: sim, memory: 1GiB, args: [--load-time, 2s, --itl, 20ms]}\n")
	}
	b.WriteString("# slots:\n#   private: {port: 30001}\n# profiles:\n#   hybrid: {always_on: []}\n")
	return b.String(), n, nil
}

func yamlQuote(s string) string { return fmt.Sprintf("%q", s) }

// modelKey turns a path like qwen3/Qwen3-8B into a unique model name.
func modelKey(path string, used map[string]bool) string {
	base := strings.ToLower(filepath.Base(path))
	base = strings.TrimSuffix(base, ".gguf")
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	name := strings.Trim(b.String(), "-.")
	if name == "" {
		name = "model"
	}
	k := name
	for i := 2; used[k]; i++ {
		k = fmt.Sprintf("%s-%d", name, i)
	}
	used[k] = true
	return k
}

// doctorImages checks the Docker daemon (through the Engine API, as gantry
// serve uses it) and each configured image: present or not, digest,
// architecture against this machine's, size.
func doctorImages(ctx context.Context, add func(area, status, format string, args ...any), images []string) {
	d, err := container.New()
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = d.Ping(pctx)
		cancel()
	}
	if err != nil {
		add("docker", "fail", "%d image(s) configured but the Docker daemon is not usable: %v", len(images), err)
		return
	}
	defer d.Close()
	add("docker", "ok", "the Docker daemon answers (DOCKER_HOST %s)", firstNonEmpty(os.Getenv("DOCKER_HOST"), "unset: the local socket"))
	for _, ref := range images {
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		im, err := d.InspectImage(ictx, ref)
		cancel()
		switch {
		case err != nil:
			add("image", "fail", "%s: %v", ref, err)
		case !im.Present:
			add("image", "warn", "%s is not present: gantry pull fetches it (or set pull: missing)", ref)
		case im.Architecture != "" && im.Architecture != container.HostArch():
			add("image", "fail", "%s is built for %s/%s but this machine is %s: pull the %s variant", ref, im.OS, im.Architecture, container.HostArch(), container.HostArch())
		default:
			add("image", "ok", "%s: present, %s/%s, %s, digest %s", ref, im.OS, im.Architecture, config.FormatBytes(im.Size), firstNonEmpty(im.Digest, "none (built or loaded here)"))
		}
	}
}

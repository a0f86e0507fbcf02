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
	"github.com/gantryhq/gantry/internal/gpu"
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

// doctorRun is one `gantry doctor`: the lines it has found so far.
type doctorRun struct{ out []Check }

// add appends one line.
func (d *doctorRun) add(area, status, format string, args ...any) {
	d.out = append(d.out, Check{area, status, fmt.Sprintf(format, args...)})
}

func doctor(ctx context.Context, cf clientFlags) []Check {
	d := &doctorRun{}
	c, demo := d.config(ctx, cf)
	box := localBox(ctx, c)
	d.gpus(box.Facts)
	d.memory(c, box)
	// docker, for models that run in containers
	var images []string
	for _, n := range c.ModelNames() {
		if m := c.Models[n]; m.Runtime == config.RuntimeDocker {
			images = append(images, m.Image)
		}
	}
	if len(images) > 0 {
		doctorImages(ctx, d.add, uniq(images))
	}
	d.engines(c)
	d.ports(ctx, cf, c)
	d.root(c, demo)
	d.findings(c, box)
	return d.out
}

// config runs the same validation as `gantry config validate` (then the
// rest is what only the live machine can tell) and returns the config to
// check the box against: the demo's when there is none or it is broken.
func (d *doctorRun) config(ctx context.Context, cf clientFlags) (c *config.Config, demo bool) {
	path, explicit := configPath(cf.config)
	c, probs, err := validate(ctx, path)
	switch {
	case errors.Is(err, config.ErrNotFound) && !explicit:
		d.add("config", "warn", "no config at %s: `gantry serve` runs the demo; `gantry init` writes a starter config", path)
		c, demo = config.Demo(), true
	case err != nil:
		d.add("config", "fail", "%v", err)
		c = config.Demo()
	case probs.Errors() > 0:
		for _, p := range probs {
			if !p.Warning {
				d.add("config", "fail", "%s", p)
			}
		}
		d.add("config", "fail", "%s: %d problem(s) (gantry config validate lists them)", path, probs.Errors())
		if c == nil {
			c = config.Demo()
		}
	default:
		d.add("config", "ok", "%s: valid (%d models, %d warnings)", path, len(c.Models), len(probs))
	}
	return c, demo
}

// gpus says what nvidia-smi found.
func (d *doctorRun) gpus(f gpu.Facts) {
	switch {
	case len(f.GPUs) == 0:
		d.add("gpu", "warn", "no NVIDIA GPU found (%s): only sim and CPU engines will run", firstNonEmpty(f.Err, "nvidia-smi gave nothing"))
	default:
		for _, g := range f.GPUs {
			mem := "memory unknown"
			if g.MemoryTotal != nil {
				mem = config.FormatBytes(*g.MemoryTotal)
			} else if g.Unified {
				mem = "unified memory (nvidia-smi reports [N/A]; /proc/meminfo is used)"
			}
			d.add("gpu", "ok", "%d: %s, driver %s, compute capability %s, %s", g.Index, g.Name, g.Driver, orDash(g.ComputeCap), mem)
		}
	}
}

// memory says where the memory total comes from, and on unified memory
// what the kernel and CUDA each see and what gantry does about it.
func (d *doctorRun) memory(c *config.Config, box plan.Box) {
	f := box.Facts
	src := f.Source
	if c.Memory.Total > 0 {
		src = "memory.total in the config"
	}
	if box.Total > 0 {
		d.add("memory", "ok", "%s total from %s; budget %s after reserve %s", config.FormatBytes(box.Total), src,
			config.FormatBytes(box.Budget), c.Memory.Reserve)
	} else {
		d.add("memory", "fail", "the memory total is unknown (%s): set memory.total", f.Source)
	}
	if mi := f.Memory; f.Unified && mi != nil {
		// What the kernel says and what CUDA sees differ on unified memory:
		// the page cache is reclaimable for one, used for the other.
		floor := mi.Total - box.Total
		d.add("unified", "ok", "MemTotal %s, MemAvailable %s, page cache %s; CUDA would report %s free (MemFree: it counts the page cache as used); engines can get %s, the floor kept for the OS and driver %s",
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
				d.add("unified", "warn", "memory.drop_caches needs root; gantry runs as uid %d and will only evict the model's own pages", os.Geteuid())
			}
		}
		d.add("unified", "ok", "%s; the watchdog %s", drop, wd)
	}
}

// engines finds the program of each native model's engine.
func (d *doctorRun) engines(c *config.Config) {
	self, _ := os.Executable()
	for _, n := range c.ModelNames() {
		m := c.Models[n]
		if m.Runtime != config.RuntimeNative {
			continue
		}
		l, err := launch.Build(m, launch.Host{Config: c, Self: self}, engine.Resources{})
		if err != nil {
			d.add("engine", "fail", "%s: %v", n, err)
			continue
		}
		if p, err := exec.LookPath(l.Argv[0]); err != nil {
			d.add("engine", "fail", "%s: %s is not installed (set engines.%s.binary, or runtime: docker)", n, l.Argv[0], m.Engine)
		} else {
			d.add("engine", "ok", "%s: %s", n, p)
		}
	}
}

// ports says who holds each port the config names: gantry, one of its
// engines, or another process.
func (d *doctorRun) ports(ctx context.Context, cf clientFlags, c *config.Config) {
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
			d.add("port", "ok", "%d: gantry is serving here", p)
		case running[p] != "":
			d.add("port", "ok", "%d: %s is running there", p, running[p])
		default:
			d.add("port", "warn", "%d (%s) is held by another process: starting there will fail (ss -ltnp 'sport = :%d' names it)", p, ports[p], p)
		}
	}
}

// root checks the root's folders (none for the demo's temporary root).
func (d *doctorRun) root(c *config.Config, demo bool) {
	missing := []string{}
	for _, d := range rootTree {
		if !fileExists(filepath.Join(c.Root, d)) {
			missing = append(missing, d)
		}
	}
	if demo {
		// the demo's root is a temporary folder; nothing to check
	} else if len(missing) > 0 {
		d.add("root", "warn", "%s lacks %s: run `gantry init`", c.Root, strings.Join(missing, ", "))
	} else {
		d.add("root", "ok", "%s", c.Root)
	}
}

// findings are the planner's known-bad combinations.
func (d *doctorRun) findings(c *config.Config, box plan.Box) {
	plans := plan.Make(c, box, nil)
	for _, n := range c.ModelNames() {
		for _, fd := range plans[n].Findings {
			st := "warn"
			if fd.Level == plan.LevelError {
				st = "fail"
			}
			d.add("model", st, "%s: %s — %s", n, fd.Reason, fd.Fix)
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
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

package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/gantryhq/gantry/internal/engine"

	"github.com/gantryhq/gantry/internal/hfcache"
)

// engineNeeds checks what a model of engine d must set: path:, or an
// engine-side name in model: instead.
func (v *validator) engineNeeds(m *Model, p []string) {
	if msg := m.NamesNoModel(); msg != "" {
		v.add(p, "%s", msg)
	}
}

// NamesNoModel says what m must set for its engine to find the model —
// path:, or an engine-side name in model: instead —, "" when it names
// one (or its engine is unknown or needs none).
func (m *Model) NamesNoModel() string {
	d, _ := engine.Lookup(m.Engine)
	switch {
	case d == nil:
	case d.Files.NeedsPath && m.Path == "":
		return fmt.Sprintf("engine %s needs path: (the model folder, relative to <root>/models, or absolute)", m.Engine)
	case d.Files.TagExample != "" && m.Path == "" && m.Model == "":
		return fmt.Sprintf("engine %s needs model: (a tag such as %s) or path: (a .%s file)", m.Engine, d.Files.TagExample, strings.Join(d.Files.Formats, ", ."))
	}
	return ""
}

// engineList is the known engines, for messages.
func engineList() string { return strings.Join(engine.Names(), ", ") }

// commandEngines are the engines that take command:, for messages.
func commandEngines() string {
	var out []string
	for _, d := range engine.All() {
		if d.TakesCommand {
			out = append(out, d.Name)
		}
	}
	return strings.Join(out, ", ")
}

// aliases checks that aliases are unique, and not a model's name.
func (v *validator) aliases() {
	c := v.c
	aliasOf := map[string]string{}
	for _, name := range c.ModelNames() {
		for i, a := range c.Models[name].Aliases {
			p := []string{"models", name, "aliases", strconv.Itoa(i)}
			if _, ok := c.Models[a]; ok {
				v.add(p, "alias %q is also the name of models.%s", a, a)
			} else if o, ok := aliasOf[a]; ok && o != name {
				v.add(p, "alias %q is also an alias of models.%s", a, o)
			}
			if !validName(a) {
				v.add(p, "alias %q: use letters, digits and . _ - : only", a)
			}
			aliasOf[a] = name
		}
	}
}

// fallbacks checks the fallback chains: known models, no cycles (each
// cycle reported once).
func (v *validator) fallbacks() {
	c := v.c
	inCycle := map[string]bool{}
	for _, name := range c.ModelNames() {
		m := c.Models[name]
		if m.Fallback == "" {
			continue
		}
		p := []string{"models", name, "fallback"}
		if c.Resolve(m.Fallback) == nil {
			v.add(p, "%q is not a configured model", m.Fallback)
			continue
		}
		seen := map[string]bool{name: true}
		chain := []string{name}
		cur := c.Resolve(m.Fallback)
		for cur != nil {
			chain = append(chain, cur.Name)
			if seen[cur.Name] {
				if !inCycle[name] {
					v.add(p, "fallback cycle: %s", strings.Join(chain, " → "))
					for _, n := range chain {
						inCycle[n] = true
					}
				}
				break
			}
			seen[cur.Name] = true
			if cur.Fallback == "" {
				break
			}
			cur = c.Resolve(cur.Fallback)
		}
	}
}

// image refuses what Docker would refuse to pull or run: the reference
// grammar of the Docker client itself (distribution/reference).
func (v *validator) image(at []string, image string) {
	if _, err := reference.ParseNormalizedNamed(image); err != nil {
		v.add(at, "%q is not an image reference (%v): write [registry/]name[:tag][@sha256:digest] in lower case, e.g. lmsysorg/sglang:v0.5.4", image, err)
	}
}

func (v *validator) model(name string, m *Model, p []string) {
	c := v.c
	at := func(k string) []string { return append(append([]string(nil), p...), k) }
	if !validName(name) {
		v.add(p, "model name %q: use letters, digits and . _ - : only (it is used in URLs and file names)", name)
	}
	d, _ := engine.Lookup(m.Engine)
	if m.Engine == "" {
		v.add(p, "engine is missing (one of %s)", engineList())
	} else if d == nil {
		v.add(at("engine"), "unknown engine %q (one of %s)", m.Engine, engineList())
	}
	switch m.Mode {
	case ModeAlwaysOn, ModeOnDemand:
	default:
		v.add(at("mode"), "%q is not a mode (always-on or on-demand)", m.Mode)
	}
	switch m.Runtime {
	case RuntimeNative:
	case RuntimeDocker:
		if d != nil && d.NativeOnly {
			v.add(at("runtime"), "engine %s runs natively only", m.Engine)
		}
		if m.Image == "" {
			v.add(at("image"), "runtime docker needs an image (engines.%s.image or models.%s.image)", m.Engine, name)
		} else if _, err := reference.ParseNormalizedNamed(m.Image); err != nil {
			if es := c.Engines[m.Engine]; es == nil || es.Image != m.Image { // else said at engines.<engine>.image
				v.image(at("image"), m.Image)
			}
		} else if tag := imageTag(m.Image); tag == "" || tag == "latest" {
			v.warn(at("image"), "%q is not pinned: name a version tag so an engine upgrade is a decision", m.Image)
		}
		if !validGPUs(m.GPUs) {
			v.add(at("gpus"), "%q: write all, none, a count (2) or device IDs (0,1 or GPU-…)", m.GPUs)
		}
		if m.Pull != "never" && m.Pull != "missing" {
			v.add(at("pull"), "%q: want never or missing", m.Pull)
		}
	default:
		v.add(at("runtime"), "%q is not a runtime (native or docker)", m.Runtime)
	}
	v.engineNeeds(m, p)
	if hfcache.IsRef(m.Path) {
		if _, err := hfcache.ParseRef(m.Path); err != nil {
			v.add(at("path"), "%v", err)
		}
	}
	if d != nil && d.TakesCommand {
		if len(m.Command) == 0 {
			v.add(p, "engine command needs command: (the argv of the server to run)")
		}
		if !strings.HasPrefix(m.Health, "/") {
			v.add(at("health"), "%q must be a path starting with /", m.Health)
		}
	} else if len(m.Command) > 0 {
		v.add(at("command"), "only engine %s takes command: (use args: to add flags)", commandEngines())
	}
	if m.Slot != "" {
		if _, ok := c.Slots[m.Slot]; !ok {
			v.add(at("slot"), "%q is not a configured slot (slots: %s)", m.Slot, strings.Join(sortedKeys(c.Slots), ", "))
		} else if c.has(at("port")...) {
			v.add(at("port"), "a member of slot %s runs on the slot's port; remove port:", m.Slot)
		}
		if m.AlwaysOn() {
			v.add(at("mode"), "a slot member cannot be always-on (slot %s switches between its members)", m.Slot)
		}
	}
	if d != nil && d.Shared != "" && c.has(at("port")...) {
		v.add(at("port"), "%s models share one `%s`: set engines.%s.port instead", d.Name, d.Shared, d.Name)
	}
	if m.Port < 0 || m.Port > 65535 {
		v.add(at("port"), "%d is not a port", m.Port)
	} else if m.Port == 0 && m.Slot == "" {
		v.add(p, "no free port left in port_range %s", c.PortRange)
	}
	if m.Concurrency < 0 {
		v.add(at("concurrency"), "must not be negative")
	}
	if m.AbandonedLoads != "continue" && m.AbandonedLoads != "cancel" {
		v.add(at("abandoned_loads"), "%q: want continue or cancel", m.AbandonedLoads)
	}
	if m.QueueLimit < 0 {
		v.add(at("queue_limit"), "must not be negative")
	}
	if m.MaxConcurrency < 0 {
		v.add(at("max_concurrency"), "must not be negative (0: no cap)")
	}
	if m.Context < 0 {
		v.add(at("context"), "must not be negative")
	}
	for k := range m.Env {
		if !validEnvName(k) {
			v.add(append(at("env"), k), "%q is not a valid environment variable name", k)
		}
	}
	v.timings(p, m.StartTimeout, m.StopTimeout, m.IdleTimeout, m.HealthInterval, m.HealthFailures)
}

// timings checks the time settings of a model or of defaults: none is
// negative, and a start must have time to happen.
func (v *validator) timings(p []string, start, stop, idle, healthEvery Duration, healthFailures int) {
	at := func(k string) []string { return append(append([]string(nil), p...), k) }
	for _, t := range []struct {
		key string
		d   Duration
	}{{"start_timeout", start}, {"stop_timeout", stop}, {"idle_timeout", idle}, {"health_interval", healthEvery}} {
		if t.d < 0 {
			v.add(at(t.key), "must not be negative")
		}
	}
	if start == 0 && v.c.has(at("start_timeout")...) {
		v.add(at("start_timeout"), "0 leaves no time to start; give it the longest load you expect (default 15m)")
	}
	if healthFailures < 0 {
		v.add(at("health_failures"), "must not be negative (0 turns the health checks off)")
	}
}

// validName reports whether s is safe as a model name: it appears in URLs,
// file names and container names.
func validName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == ':':
		default:
			return false
		}
	}
	return true
}

// imageTag returns the tag of a container image reference, "" when there is
// none; a digest (@sha256:…) counts as pinned.
// validGPUs reports whether s is all, none, a count, or device IDs.
func validGPUs(s string) bool {
	if s == "all" || s == "none" {
		return true
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n > 0
	}
	for _, id := range strings.Split(s, ",") {
		if strings.TrimSpace(id) == "" || strings.ContainsAny(id, " \t") {
			return false
		}
	}
	return s != ""
}

func imageTag(image string) string {
	if strings.Contains(image, "@") {
		return "digest"
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[i+1:]
	}
	return ""
}

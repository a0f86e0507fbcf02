package config

import (
	"net/url"
	"strconv"

	"github.com/gantryhq/gantry/internal/engine"
)

// slots checks each slot's name, switch settings and default (a member).
func (v *validator) slots() {
	c := v.c
	for _, name := range sortedKeys(c.Slots) {
		s := c.Slots[name]
		if !validName(name) {
			v.add([]string{"slots", name}, "slot name %q: use letters, digits and . _ - : only (it is used in URLs, pages and file names)", name)
		}
		if s == nil {
			continue
		}
		if s.DuringSwitch != "wait" && s.DuringSwitch != "refuse" {
			v.add([]string{"slots", name, "during_switch"}, "%q: want wait or refuse", s.DuringSwitch)
		}
		if s.MinResidency < 0 {
			v.add([]string{"slots", name, "min_residency"}, "must not be negative")
		}
		if s.DefaultAfter < 0 {
			v.add([]string{"slots", name, "default_after"}, "must not be negative")
		}
		if s.Default == "" {
			continue
		}
		m := c.Resolve(s.Default)
		if m == nil {
			v.add([]string{"slots", name, "default"}, "%q is not a configured model", s.Default)
		} else if m.Slot != name {
			v.add([]string{"slots", name, "default"}, "models.%s is not in slot %s (add slot: %s to it)", m.Name, name, name)
		}
	}
}

// profiles checks each profile's name and always-on models.
func (v *validator) profiles() {
	c := v.c
	for _, name := range sortedKeys(c.Profiles) {
		pr := c.Profiles[name]
		if !validName(name) {
			v.add([]string{"profiles", name}, "profile name %q: use letters, digits and . _ - : only (it is used in URLs, pages and file names)", name)
		}
		if pr == nil {
			continue
		}
		for i, mn := range pr.AlwaysOn {
			if c.Resolve(mn) == nil {
				v.add([]string{"profiles", name, "always_on", strconv.Itoa(i)}, "%q is not a configured model", mn)
			}
		}
	}
}

// presets checks each preset's model, name and settings.
func (v *validator) presets() {
	c := v.c
	for _, name := range sortedKeys(c.Presets) {
		p := c.Presets[name]
		at := []string{"presets", name}
		switch {
		case p == nil || p.Model == "":
			v.add(at, "a preset needs model: (the model that serves it)")
			continue
		case c.Resolve(p.Model) == nil:
			v.add(append(at, "model"), "%q is not a configured model", p.Model)
		case c.Resolve(name) != nil:
			v.add(at, "%q is also a model name or alias; a preset needs a name of its own", name)
		}
		if !validName(name) {
			v.add(at, "preset name %q: use letters, digits and . _ - : only", name)
		}
		for _, k := range []string{"model", "stream"} {
			if _, ok := p.Set[k]; ok {
				v.add(append(at, "set", k), "a preset may not set %s: the client's request decides it", k)
			}
		}
	}
}

// services checks each auxiliary service's URL.
func (v *validator) services() {
	c := v.c
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		p := []string{"services", name, "url"}
		if s == nil || s.URL == "" {
			v.add(p, "a service needs a url")
			continue
		}
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(p, "%q is not an http(s) URL", RedactURL(s.URL))
		}
	}
}

// engines checks engines: known names, pinned images.
func (v *validator) engines() {
	c := v.c
	for _, e := range sortedKeys(c.Engines) {
		if !engine.Known(e) {
			v.add([]string{"engines", e}, "unknown engine (known: %s)", engineList())
		}
		if es := c.Engines[e]; es != nil && es.Image != "" {
			v.image([]string{"engines", e, "image"}, es.Image)
		}
	}
}

// anyOrigin judges cors.allowed_origins: ["*"]: every web page the user
// opens may then call gantry from the user's browser. Without keys that is
// every page driving the box — chatting, starting and stopping models,
// reading logs — so it is refused; with keys a page needs one (a web app
// the user gave a key), so it is allowed, with a word.
func (v *validator) anyOrigin(at []string) {
	if v.c.Auth.GatewayOpen() {
		v.add(at, `"*" with no keys lets every web page you open use gantry and drive its admin API (start and stop models, read logs): list your web apps' origins (e.g. http://localhost:8080), or set auth.api_keys`)
		return
	}
	v.warn(at, `"*": a page on any site may call gantry from its visitors' browsers, with a key it holds; list your web apps' origins unless that is what you want`)
}

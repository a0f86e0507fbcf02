package cli

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/plan"
)

func runDocs(e *env, args []string) error {
	fs := flag.NewFlagSet("docs", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("out", "", "folder to write into (default <root>/docs)")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("gantry docs takes no arguments (use --out DIR)")
	}
	c, _, err := loadConfig(cf.config, true)
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(c.Root, "docs")
	}
	var served map[string]string
	if st, err := cf.status(e.ctx); err == nil {
		served = map[string]string{}
		for _, m := range st.Models {
			served[m.Name] = string(m.State)
		}
	}
	rows, err := plan.Inventory(c, localBox(e.ctx, c), served)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ep, inv := endpointsDoc(c, served), inventoryDoc(c, rows, served != nil)
	for name, text := range map[string]string{"inference_endpoints.md": ep, "model_inventory.md": inv} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s\n", filepath.Join(dir, name))
	}
	return nil
}

func stamp(live bool) string {
	src := "the config only (gantry was not reachable, so states are unknown)"
	if live {
		src = "the config and the running gantry"
	}
	return fmt.Sprintf("_Written by `gantry docs` on %s from %s. Do not edit: run it again._\n\n", time.Now().Format("2006-01-02 15:04"), src)
}

// endpointsDoc is inference_endpoints.md, the seed's source of truth for
// URLs and ports.
func endpointsDoc(c *config.Config, served map[string]string) string {
	var b strings.Builder
	b.WriteString("# Inference endpoints\n\n")
	b.WriteString(stamp(served != nil))
	gw := "http://" + dialable(c.Listen)
	authNote := "none (loopback only)"
	if !c.Auth.GatewayOpen() {
		authNote = "`Authorization: Bearer <one of auth.api_keys or auth.keys>`"
	}
	fmt.Fprintf(&b, "**Use this:** one OpenAI-compatible endpoint for every model: `%s/v1` (auth: %s).\n", gw, authNote)
	b.WriteString("Pick the model with the request's `model` field (name or alias). Engine ports below are on 127.0.0.1 only, for debugging on the box.\n\n")
	b.WriteString("A model or slot with its own address (`listen:` in the config) also answers there, with the same API; there the `model` field may be left out.\n\n")
	b.WriteString("| model | aliases | engine | mode | state | gateway URL | own URL | engine port | served name |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range c.ModelNames() {
		m := c.Models[n]
		state := "unknown"
		if served != nil {
			state = served[n]
		}
		mode := m.Mode
		if m.Slot != "" {
			mode += ", slot " + m.Slot
		}
		own := "-"
		if m.Listen != "" {
			own = "`http://" + docsAddr(m.Listen) + "/v1`"
		} else if sl := c.Slots[m.Slot]; sl != nil && sl.Listen != "" {
			own = "`http://" + docsAddr(sl.Listen) + "/v1` (slot)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | `%s/v1` | %s | %d | `%s` |\n", n, strings.Join(m.Aliases, ", "), m.Engine, mode, state, gw, own, m.Port, n)
	}
	if len(c.Slots) > 0 {
		b.WriteString("\n## Slots\n\n| slot | URL | engine port | default | members |\n|---|---|---|---|---|\n")
		for _, s := range sortedNames(c.Slots) {
			var members []string
			for _, n := range c.ModelNames() {
				if c.Models[n].Slot == s {
					members = append(members, n)
				}
			}
			sl := c.Slots[s]
			url := "-"
			if sl.Listen != "" {
				url = "`http://" + docsAddr(sl.Listen) + "/v1`"
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", s, url, sl.Port, orDash(sl.Default), strings.Join(members, ", "))
		}
	}
	writePresets(&b, c)
	if oa := c.OllamaAPI; oa != nil && oa.Listen != "" {
		b.WriteString("\n## Ollama's API\n\n")
		fmt.Fprintf(&b, "Every model above, for clients that speak only Ollama's API: `http://%s` (set `OLLAMA_HOST=%s`; `/api/tags`, `/api/chat`, `/api/generate`, `/api/embed` …; the gateway's `/v1` routes too). Models are gantry's: pull, create and delete are refused there.\n",
			docsAddr(oa.Listen), docsAddr(oa.Listen))
	}
	if len(c.Services) > 0 {
		b.WriteString("\n## Auxiliary services\n\n| service | URL |\n|---|---|\n")
		for _, s := range sortedNames(c.Services) {
			fmt.Fprintf(&b, "| %s | %s |\n", s, config.RedactURL(c.Services[s].URL))
		}
	}
	b.WriteString("\n## Admin\n\n")
	fmt.Fprintf(&b, "Dashboard and admin API: `%s/` and `%s/api/status` (admin key when keys are set). Health: `%s/healthz`.\n", gw, gw, gw)
	return b.String()
}

// writePresets lists the presets: names clients may ask for, served by a
// model with parameters set or stripped.
func writePresets(b *strings.Builder, c *config.Config) {
	if len(c.Presets) == 0 {
		return
	}
	b.WriteString("\n## Presets\n\nNames a client may send as `model`, served by a model with request parameters set or stripped.\n\n| preset | served by | sets | strips |\n|---|---|---|---|\n")
	for _, n := range sortedNames(c.Presets) {
		p := c.Presets[n]
		var set []string
		for _, k := range sortedNames(p.Set) {
			set = append(set, fmt.Sprintf("`%s`", k))
		}
		var strip []string
		for _, k := range p.Strip {
			strip = append(strip, fmt.Sprintf("`%s`", k))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", n, p.Model, orDash(strings.Join(set, ", ")), orDash(strings.Join(strip, ", ")))
	}
}

// docsAddr is the address to write for a listener: its own host, or this
// machine's name when it listens on every interface (clients elsewhere
// reach it by that name).
func docsAddr(listen string) string {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		if name, err := os.Hostname(); err == nil && name != "" {
			return net.JoinHostPort(name, p)
		}
	}
	return dialable(listen)
}

func sortedNames[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return ks
}

// inventoryDoc is model_inventory.md: on disk versus served.
func inventoryDoc(c *config.Config, rows []plan.Row, live bool) string {
	var b strings.Builder
	b.WriteString("# Model inventory\n\n")
	b.WriteString(stamp(live))
	fmt.Fprintf(&b, "On disk means under `%s`; served means configured in gantry (and its state when gantry was reachable).\n\n", filepath.Join(c.Root, "models"))
	b.WriteString("| model | on disk | served | engine | quantization | weights | estimate | path |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		served := "no"
		if r.Configured {
			served = "configured (" + r.Served + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Name, yes(r.OnDisk), served, orDash(r.Engine),
			orDash(r.Quant), sizeOrDash(r.SizeBytes), sizeOrDash(r.Estimate), whereIs(c, r))
	}
	return b.String()
}

func sortStrings(s []string) { sort.Strings(s) }

// whereIs is where a model of the inventory lives: its path, or for a
// model without one, what the engine serves it by (an Ollama tag, a
// command of its own).
func whereIs(c *config.Config, r plan.Row) string {
	if r.Path != "" {
		return "`" + r.Path + "`"
	}
	if m := c.Models[r.Name]; m != nil {
		switch {
		case m.Model != "":
			return fmt.Sprintf("tag `%s` (in the %s store)", m.Model, m.Engine)
		case len(m.Command) > 0:
			return fmt.Sprintf("its own command (`%s`)", m.Command[0])
		}
		return "none (engine " + m.Engine + ")"
	}
	return "-"
}

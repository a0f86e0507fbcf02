package kube

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
)

// notExpressed lists what the config says about the exported models that
// no exported object carries: gantry's scheduling (slots, fallbacks,
// profiles, idle timeouts, memory admission), its own doors and gateway
// features. Each line names the key and what becomes of it.
func notExpressed(c *config.Config, names []string) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	var idle []string
	add("memory admission and eviction: gantry's scheduler keeps the models that fit in a box's memory; on the cluster each engine is a pod placed by its nvidia.com/gpu request")
	for _, n := range names {
		m := c.Models[n]
		if m.Fallback != "" {
			add("%s: fallback %s (served when %s cannot start): a route does not fall back on a model that failed to start", n, m.Fallback, n)
		}
		if !m.AlwaysOn() && m.IdleTimeout > 0 {
			idle = append(idle, fmt.Sprintf("%s %s", n, m.IdleTimeout))
		}
		if m.Listen != "" {
			add("%s: listen %s is gantry's own address for the model: on the cluster the Gateway is the door", n, m.Listen)
		}
		if own(c, n, "queue_limit") || own(c, n, "abandoned_loads") {
			add("%s: queue_limit and abandoned_loads are gantry's request queue: the Gateway and the engine queue instead", n)
		}
		if m.MaxConcurrency > 0 {
			add("%s: max_concurrency %d is gantry's cap in front of the engine: on the cluster the engine's own batch limits and the endpoint picker's queue apply", n, m.MaxConcurrency)
		}
		if m.LoadingMessage {
			add("%s: loading_message is a gantry gateway feature", n)
		}
		if m.Model != "" {
			add("%s: model: %s is registered with the engine by gantry after each start; on the cluster the engine's store on the models volume must hold it already", n, m.Model)
		}
	}
	if len(idle) > 0 {
		add("idle timeouts (%s): nothing scales a Deployment back to 0 when idle; an autoscaler can", strings.Join(idle, ", "))
	}
	for _, s := range sortedKeys(c.Slots) {
		var members []string
		for _, n := range names {
			if c.Models[n].Slot == s {
				members = append(members, n)
			}
		}
		if len(members) > 0 {
			add("slot %s (%s, one at a time on one port): each member is a Deployment of its own; scale the ones not wanted to 0", s, strings.Join(members, ", "))
		}
	}
	if len(c.Profiles) > 0 {
		add("profiles (%s): named sets of always-on models; the export follows each model's mode:", strings.Join(sortedKeys(c.Profiles), ", "))
	}
	if len(c.Presets) > 0 {
		add("presets (%s): request rewrites in gantry's gateway", strings.Join(sortedKeys(c.Presets), ", "))
	}
	if len(c.Auth.APIKeys) > 0 || len(c.Auth.AdminKeys) > 0 {
		add("auth keys: gantry's gateway checks them; on the cluster the Gateway's own authentication applies")
	}
	if len(c.Auth.Keys) > 0 {
		add("auth.keys (%s): each key's models, rpm, tpm, concurrency and priority are gantry's gateway; on the cluster the Gateway's own authentication and rate limits apply", strings.Join(sortedKeys(c.Auth.Keys), ", "))
	}
	if c.Telemetry != nil {
		add("telemetry: gantry's traces of its requests; on the cluster the Gateway's and the engines' own tracing apply")
	}
	if len(c.Peers) > 0 {
		add("peers (%s): other boxes' gantry; on the cluster every model is a pool of its own", strings.Join(c.PeerNames(), ", "))
	}
	if c.OllamaAPI != nil {
		add("ollama_api: gantry's translation of Ollama's API; the pools speak the engines' OpenAI API")
	}
	slices.Sort(out[1:])
	return out
}

// own reports whether the model sets key itself (not from defaults:).
func own(c *config.Config, model, key string) bool {
	l := c.Line("models", model, key)
	return l > 0 && l != c.Line("models", model)
}

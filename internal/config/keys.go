package config

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Priorities a key's requests wait with (auth.keys.<name>.priority).
const (
	PriorityInteractive = "interactive"
	PriorityBatch       = "batch"
)

// Key is one named key of auth.keys: which models it sees, its limits and
// the priority its requests wait with. The key itself never leaves the
// config: gantry shows only the name.
type Key struct {
	Key string `yaml:"key" json:"-"`
	// Models are the names (models, aliases, presets, peers' models) the
	// key sees, each a name or a glob ("qwen*"); absent (nil): every
	// model; an empty list: none.
	Models []string `yaml:"models" json:"models,omitempty"`
	// Admin lets the key reach the admin API.
	Admin bool `yaml:"admin" json:"admin,omitempty"`
	// RPM, TPM and Concurrency limit the key's requests per minute,
	// tokens (prompt and completion, from the answers' usage) per minute
	// and requests in flight at once; 0: no limit.
	RPM         int `yaml:"rpm" json:"rpm,omitempty"`
	TPM         int `yaml:"tpm" json:"tpm,omitempty"`
	Concurrency int `yaml:"concurrency" json:"concurrency,omitempty"`
	// Priority is interactive (default) or batch: waiting requests of
	// interactive keys go first, and batch ones never switch a slot away
	// from, nor evict, a model an interactive request uses.
	Priority string `yaml:"priority" json:"priority"`
}

// Telemetry sends OpenTelemetry traces of the gateway's requests to an
// OTLP/HTTP collector (Jaeger, Tempo, an OpenTelemetry Collector).
type Telemetry struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL, e.g.
	// http://127.0.0.1:4318 (spans go to its /v1/traces).
	OTLPEndpoint string `yaml:"otlp_endpoint" json:"otlp_endpoint"`
	// Sample is the share of requests traced, 0 to 1 (default 1); a
	// request whose traceparent says sampled is always traced.
	Sample float64 `yaml:"sample" json:"sample"`
}

// KeyName is the name of the i-th (from 0) key of auth.api_keys, or of
// auth.admin_keys when admin.
func KeyName(i int, admin bool) string {
	if admin {
		return "admin key " + strconv.Itoa(i+1)
	}
	return "key " + strconv.Itoa(i+1)
}

// GatewayOpen reports whether the gateway takes requests without a key: no
// api_keys and no named keys.
func (a Auth) GatewayOpen() bool { return len(a.APIKeys) == 0 && len(a.Keys) == 0 }

// MatchModel reports whether pattern (a name or a glob) matches name.
func MatchModel(pattern, name string) bool {
	if pattern == name {
		return true
	}
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

func (c *Config) applyKeyDefaults() {
	for _, k := range c.Auth.Keys {
		if k != nil && k.Priority == "" {
			k.Priority = PriorityInteractive
		}
	}
	if t := c.Telemetry; t != nil && !c.has("telemetry", "sample") {
		t.Sample = 1
	}
}

// keys checks auth.keys and telemetry.
func (v *validator) keys() {
	c := v.c
	seen := map[string]string{} // key → where it is configured
	note := func(key string, at []string) {
		if key == "" {
			return
		}
		if o, ok := seen[key]; ok {
			v.add(at, "the same key as %s: each key must name one holder", o)
			return
		}
		seen[key] = strings.Join(at, ".")
	}
	for i, k := range c.Auth.APIKeys {
		note(k, []string{"auth", "api_keys", strconv.Itoa(i)})
	}
	for i, k := range c.Auth.AdminKeys {
		if !slices.Contains(c.Auth.APIKeys, k) { // a key in both lists is one admin key
			note(k, []string{"auth", "admin_keys", strconv.Itoa(i)})
		}
	}
	for _, name := range sortedKeys(c.Auth.Keys) {
		k := c.Auth.Keys[name]
		at := []string{"auth", "keys", name}
		if k == nil || strings.TrimSpace(k.Key) == "" {
			v.add(at, "key: is missing (the secret clients send, e.g. \"${env.%s_KEY}\")", strings.ToUpper(envSafe(name)))
			continue
		}
		note(k.Key, append(at, "key"))
		if !validName(name) {
			v.add(at, "key name %q: use letters, digits and . _ - : only", name)
		}
		for _, f := range []struct {
			key string
			n   int
		}{{"rpm", k.RPM}, {"tpm", k.TPM}, {"concurrency", k.Concurrency}} {
			if f.n < 0 {
				v.add(append(at, f.key), "must not be negative (0: no limit)")
			}
		}
		if k.Priority != PriorityInteractive && k.Priority != PriorityBatch {
			v.add(append(at, "priority"), "%q: want %s or %s", k.Priority, PriorityInteractive, PriorityBatch)
		}
		v.keyModels(name, k, at)
	}
	v.telemetry()
}

// keyModels checks a key's model patterns: valid globs, and each one
// seeing something (a typo would hide a model without a word).
func (v *validator) keyModels(name string, k *Key, at []string) {
	if k.Models != nil && len(k.Models) == 0 {
		v.warn(append(at, "models"), "an empty list: key %s sees no model; leave models: out for a key that sees every model, or list its models", name)
		return
	}
	names := v.c.ServableNames()
	for i, p := range k.Models {
		pat := append(append([]string(nil), at...), "models", strconv.Itoa(i))
		if _, err := path.Match(p, ""); err != nil || p == "" {
			v.add(pat, "%q is not a model name or a glob such as \"qwen*\"", p)
			continue
		}
		matched := false
		for _, n := range names {
			if MatchModel(p, n) {
				matched = true
				break
			}
		}
		if !matched && len(v.c.Peers) == 0 { // a peer's models are not known here
			v.warn(pat, "%q matches no model, alias or preset: key %s does not see it", p, name)
		}
	}
}

func (v *validator) telemetry() {
	t := v.c.Telemetry
	if t == nil {
		return
	}
	u, err := url.Parse(t.OTLPEndpoint)
	switch {
	case t.OTLPEndpoint == "":
		v.add([]string{"telemetry"}, "otlp_endpoint is missing (the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318); remove telemetry: to turn traces off")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.add([]string{"telemetry", "otlp_endpoint"}, "%q is not an OTLP/HTTP URL (write it like http://127.0.0.1:4318)", t.OTLPEndpoint)
	}
	if t.Sample < 0 || t.Sample > 1 {
		v.add([]string{"telemetry", "sample"}, "%v: want a share from 0 to 1 (0.1 traces one request in ten)", t.Sample)
	}
}

// ServableNames are the names a request may ask for here: models, their
// aliases and presets (peers' models are not known from the config).
func (c *Config) ServableNames() []string {
	var out []string
	for _, n := range c.ModelNames() {
		out = append(out, n)
		out = append(out, c.Models[n].Aliases...)
	}
	return append(out, sortedKeys(c.Presets)...)
}

// envSafe turns a key name into a variable name's part for a hint.
func envSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

// String describes a key's limits for messages ("60 rpm, 4 at once").
func (k *Key) String() string {
	var parts []string
	if k.RPM > 0 {
		parts = append(parts, fmt.Sprintf("%d rpm", k.RPM))
	}
	if k.TPM > 0 {
		parts = append(parts, fmt.Sprintf("%d tpm", k.TPM))
	}
	if k.Concurrency > 0 {
		parts = append(parts, fmt.Sprintf("%d at once", k.Concurrency))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, ", ")
}

// AdminToken is the key the CLI sends when none is given: the first admin
// key (of admin_keys, else of the named keys with admin: true, by name),
// else the first of api_keys; "" when there is none.
func (a Auth) AdminToken() string {
	if len(a.AdminKeys) > 0 {
		return a.AdminKeys[0]
	}
	for _, name := range sortedKeys(a.Keys) {
		if k := a.Keys[name]; k != nil && k.Admin {
			return k.Key
		}
	}
	if len(a.APIKeys) > 0 {
		return a.APIKeys[0]
	}
	return ""
}

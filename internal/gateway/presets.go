package gateway

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
)

// preset is a configured name a request may ask for (presets: in the
// config): it is served by its model with parameters set and stripped.
// Only such requests are decoded and encoded again; every other request
// keeps the gateway's zero-copy path.
type preset struct {
	name string
	p    *config.Preset
}

// resolvePreset returns the model that serves name: name itself when it is
// a model or an alias (p nil), else a preset's model.
func (g *Gateway) resolvePreset(name string) (model string, p *preset) {
	cfg := g.sched.Config()
	if len(cfg.Presets) == 0 || cfg.Resolve(name) != nil {
		return name, nil
	}
	if cp := cfg.Presets[name]; cp != nil {
		return cp.Model, &preset{name: name, p: cp}
	}
	return name, nil
}

// apply sets and strips the preset's parameters in a request body and
// names the engine's model in it.
func (p *preset) apply(body []byte, served string) ([]byte, error) {
	var req map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers pass through as written
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	for k, v := range p.p.Set {
		req[k] = merge(req[k], v)
	}
	for _, path := range p.p.Strip {
		strip(req, strings.Split(path, "."))
	}
	req["model"] = served
	return json.Marshal(req)
}

// merge lays set over have: objects merge key by key (the preset's keys
// win), anything else is replaced.
func merge(have, set any) any {
	hm, ok1 := have.(map[string]any)
	sm, ok2 := toObject(set)
	if !ok1 || !ok2 {
		if sm, ok := toObject(set); ok {
			return sm
		}
		return set
	}
	out := maps.Clone(hm)
	for k, v := range sm {
		out[k] = merge(out[k], v)
	}
	return out
}

// toObject reads a YAML mapping (decoded as map[string]any) as an object.
func toObject(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	return m, ok
}

func strip(m map[string]any, path []string) {
	if len(path) == 1 {
		delete(m, path[0])
		return
	}
	if inner, ok := m[path[0]].(map[string]any); ok {
		strip(inner, path[1:])
	}
}

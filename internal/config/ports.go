package config

import (
	"hash/fnv"

	"github.com/gantryhq/gantry/internal/engine"
)

// assignPorts gives every model without a port one, deterministically: slot
// members take the slot's port, Ollama models share `ollama serve`'s port,
// the first model (by name) of an engine with a seed port takes that port,
// and the rest get a port from port_range chosen by a hash of the model's
// name, probing past ports the config already uses. The same config always
// yields the same ports, so clients can keep a model's direct URL.
func (c *Config) assignPorts() {
	used := map[int]bool{}
	if p := c.ListenPort(); p > 0 {
		used[p] = true
	}
	for _, m := range c.Models {
		if m.Port > 0 {
			used[m.Port] = true
		}
	}
	for _, s := range c.Slots {
		if s != nil && s.Port > 0 {
			used[s.Port] = true
		}
	}
	for _, d := range engine.All() {
		if es := c.Engines[d.Name]; d.Shared != "" && es != nil && es.Port > 0 {
			used[es.Port] = true // the shared server's, whether a model uses it yet or not
		}
	}
	// gantry's own doors: an engine may not take their ports.
	for _, l := range c.doors() {
		if _, p, err := splitHostPort(l); err == nil && p > 0 {
			used[p] = true
		}
	}
	for _, name := range sortedKeys(c.Slots) {
		if s := c.Slots[name]; s != nil && s.Port == 0 && s.Listen != "" {
			s.Port, s.PortAssigned = c.freePort(name, used), true
		}
	}
	for _, name := range c.ModelNames() {
		m := c.Models[name]
		if m.Port != 0 {
			continue
		}
		if m.Slot != "" {
			if s := c.Slots[m.Slot]; s != nil {
				m.Port = s.Port
			}
			continue
		}
		if d, _ := engine.Lookup(m.Engine); d != nil && d.Shared != "" {
			if es := c.Engines[m.Engine]; es != nil {
				m.Port = es.Port
			}
			continue
		}
		if es := c.Engines[m.Engine]; es != nil && es.Port > 0 && !used[es.Port] {
			m.Port, m.PortAssigned = es.Port, true
			used[es.Port] = true
			continue
		}
		if p := c.freePort(name, used); p > 0 {
			m.Port, m.PortAssigned = p, true
		}
	}
}

// freePort picks an unused port of port_range for name, by a hash of the
// name, probing past used ones; it marks the port used (0: the range is
// full, which validation reports).
func (c *Config) freePort(name string, used map[int]bool) int {
	r := c.PortRange
	span := r.Last - r.First + 1
	if span <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	start := int(h.Sum32() % uint32(span))
	for i := 0; i < span; i++ {
		p := r.First + (start+i)%span
		if !used[p] {
			used[p] = true
			return p
		}
	}
	return 0
}

// Door is an address gantry serves on besides listen: Ollama's API, a
// model's or a slot's own listener.
type Door struct {
	// Key is the config key ("models.qwen.listen"), for messages.
	Key  string
	Addr string
	// Model or Slot is what the door serves ("" for Ollama's API).
	Model, Slot string
}

// Doors are the config's listeners besides listen, in a stable order.
func (c *Config) Doors() []Door {
	var ds []Door
	if c.OllamaAPI != nil && c.OllamaAPI.Listen != "" {
		ds = append(ds, Door{Key: "ollama_api.listen", Addr: c.OllamaAPI.Listen})
	}
	for _, name := range c.ModelNames() {
		if l := c.Models[name].Listen; l != "" {
			ds = append(ds, Door{Key: "models." + name + ".listen", Addr: l, Model: name})
		}
	}
	for _, name := range sortedKeys(c.Slots) {
		if s := c.Slots[name]; s != nil && s.Listen != "" {
			ds = append(ds, Door{Key: "slots." + name + ".listen", Addr: s.Listen, Slot: name})
		}
	}
	return ds
}

func (c *Config) doors() []string {
	var out []string
	for _, d := range c.Doors() {
		out = append(out, d.Addr)
	}
	return out
}

package plan

import (
	"fmt"

	"github.com/gantryhq/gantry/internal/inventory"
	"github.com/gantryhq/gantry/internal/status"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
)

// rule is one engine × checkpoint × box rule every engine shares, with
// its reason and fix; an engine's own rules are in its descriptor
// (engine.Descriptor.Rules). Rules come from the seed's "Reality Check"
// sections and from engine issue trackers.
type rule struct {
	name  string
	check func(p *Model, d *engine.Descriptor, m *config.Model, box Box) *status.Finding
}

// Rules lists the rule names, every engine's own included, for docs and
// tests.
func Rules() []string {
	var n []string
	for _, d := range engine.All() {
		for _, r := range d.Rules {
			n = append(n, r.Name)
		}
	}
	for _, r := range rules {
		n = append(n, r.name)
	}
	return n
}

var rules = []rule{
	{"gguf-on-hf-engine", func(p *Model, d *engine.Descriptor, m *config.Model, box Box) *status.Finding {
		if p.Info == nil || p.Info.Format != "gguf" || d.Serves("gguf") {
			return nil
		}
		return &status.Finding{Level: LevelError, Reason: fmt.Sprintf("%s serves Hugging Face checkpoints, not the GGUF file %s", m.Engine, p.Info.Path),
			Fix: "use engine: llamacpp or engine: ollama for a GGUF file, or point path: at a safetensors folder"}
	}},
	{"safetensors-on-gguf-engine", func(p *Model, d *engine.Descriptor, m *config.Model, box Box) *status.Finding {
		if p.Info == nil || p.Info.Format != "safetensors" || d.Serves("safetensors") {
			return nil
		}
		return &status.Finding{Level: LevelError, Reason: fmt.Sprintf("%s needs a GGUF file, but %s is a safetensors folder", m.Engine, p.Info.Path),
			Fix: "use engine: sglang or engine: vllm for this folder, or convert it to GGUF"}
	}},
	{"context-above-max", func(p *Model, d *engine.Descriptor, m *config.Model, box Box) *status.Finding {
		if p.Info == nil || p.Info.MaxContext <= 0 || p.Context <= p.Info.MaxContext {
			return nil
		}
		return &status.Finding{Level: LevelError, Reason: fmt.Sprintf("context %d is above the model's maximum of %d (max_position_embeddings)", p.Context, p.Info.MaxContext),
			Fix: fmt.Sprintf("set context: %d or less", p.Info.MaxContext)}
	}},
	{"does-not-fit", func(p *Model, d *engine.Descriptor, m *config.Model, box Box) *status.Finding {
		if box.Budget <= 0 || p.Bytes <= box.Budget {
			return nil
		}
		return &status.Finding{Level: LevelError, Reason: fmt.Sprintf("%s needs %s but the whole budget is %s", m.Name, config.FormatBytes(p.Bytes), config.FormatBytes(box.Budget)),
			Fix: "use a smaller quantization or a shorter context:, or raise memory.total / lower memory.reserve"}
	}},
}

// rules applies the engine's own rules, then those every engine shares.
func (p *Model) rules(d *engine.Descriptor, m *config.Model, box Box) {
	if p.Info != nil {
		ck := checkpoint(p.Info)
		var gpus []engine.GPU
		for _, g := range box.Facts.GPUs {
			gpus = append(gpus, engine.GPU{Name: g.Name, SM: g.SM()})
		}
		for _, r := range d.Rules {
			if f := r.Check(m.Name, m.Args, ck, gpus); f != nil {
				p.Findings = append(p.Findings, status.Finding{Level: f.Level, Rule: r.Name, Reason: f.Reason, Fix: f.Fix})
				p.Args = append(p.Args, f.AddArgs...)
			}
		}
	}
	for _, r := range rules {
		if f := r.check(p, d, m, box); f != nil {
			f.Rule = r.name
			p.Findings = append(p.Findings, *f)
		}
	}
}

// checkpoint is what the engine's rules read of the model's files.
func checkpoint(info *inventory.Model) engine.Checkpoint {
	q := info.Quant
	return engine.Checkpoint{Format: info.Format, Kind: info.Kind, Quant: q.String(),
		QuantMethod: q.Method, QuantAlgo: q.Algo, QuantBits: q.Bits}
}

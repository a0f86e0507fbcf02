package plan

import (
	"fmt"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
)

// rule is one known engine × checkpoint × box combination, with its reason
// and fix. Rules come from the seed's "Reality Check" sections and from
// engine issue trackers.
type rule struct {
	name  string
	check func(p *Model, m *config.Model, box Box) *Finding
}

// Rules lists the rule names, for docs and tests.
func Rules() []string {
	var n []string
	for _, r := range rules {
		n = append(n, r.name)
	}
	return n
}

var rules = []rule{
	{"compressed-tensors-on-sglang", func(p *Model, m *config.Model, box Box) *Finding {
		if m.Engine != config.EngineSGLang || p.Info == nil || p.Info.Quant.Method != "compressed-tensors" {
			return nil
		}
		return &Finding{Level: LevelWarning, Reason: fmt.Sprintf("%s is a compressed-tensors checkpoint (%s); SGLang has known scheme/loader problems with these", m.Name, p.Info.Quant),
			Fix: "if it fails to start: use a ModelOpt or fp8 checkpoint of the model, or a newer SGLang image"}
	}},
	{"fp4-on-vllm-sm12x", func(p *Model, m *config.Model, box Box) *Finding {
		if m.Engine != config.EngineVLLM || p.Info == nil || p.Info.Quant.Bits != 4 || !isFP4(p.Info.Quant.Algo) {
			return nil
		}
		for _, g := range box.Facts.GPUs {
			if sm := g.SM(); sm >= 120 && sm < 130 {
				return &Finding{Level: LevelWarning, Reason: fmt.Sprintf("vLLM may run %s weights through the Marlin weight-only FP4 fallback on SM%d (%s): little or no gain over FP8", p.Info.Quant.Algo, sm, g.Name),
					Fix: "prefer an FP8 checkpoint with vLLM here, or serve the FP4 checkpoint with SGLang or TensorRT-LLM"}
			}
		}
		return nil
	}},
	{"modelopt-fp4-on-sglang-needs-flag", func(p *Model, m *config.Model, box Box) *Finding {
		if m.Engine != config.EngineSGLang || p.Info == nil || p.Info.Quant.Method != "modelopt" || !isFP4(p.Info.Quant.Algo) || engine.HasFlag(m.Args, "--quantization") {
			return nil
		}
		p.Args = append(p.Args, "--quantization", "modelopt_fp4")
		return &Finding{Level: LevelFixed, Reason: "SGLang needs --quantization modelopt_fp4 for a ModelOpt NVFP4 checkpoint",
			Fix: "gantry adds --quantization modelopt_fp4"}
	}},
	{"gguf-on-hf-engine", func(p *Model, m *config.Model, box Box) *Finding {
		switch m.Engine {
		case config.EngineSGLang, config.EngineVLLM, config.EngineTRTLLM:
		default:
			return nil
		}
		if p.Info == nil || p.Info.Format != "gguf" {
			return nil
		}
		return &Finding{Level: LevelError, Reason: fmt.Sprintf("%s serves Hugging Face checkpoints, not the GGUF file %s", m.Engine, p.Info.Path),
			Fix: "use engine: llamacpp or engine: ollama for a GGUF file, or point path: at a safetensors folder"}
	}},
	{"safetensors-on-gguf-engine", func(p *Model, m *config.Model, box Box) *Finding {
		if (m.Engine != config.EngineOllama && m.Engine != config.EngineLlamaCpp) || p.Info == nil || p.Info.Format != "safetensors" {
			return nil
		}
		return &Finding{Level: LevelError, Reason: fmt.Sprintf("%s needs a GGUF file, but %s is a safetensors folder", m.Engine, p.Info.Path),
			Fix: "use engine: sglang or engine: vllm for this folder, or convert it to GGUF"}
	}},
	{"context-above-max", func(p *Model, m *config.Model, box Box) *Finding {
		if p.Info == nil || p.Info.MaxContext <= 0 || p.Context <= p.Info.MaxContext {
			return nil
		}
		return &Finding{Level: LevelError, Reason: fmt.Sprintf("context %d is above the model's maximum of %d (max_position_embeddings)", p.Context, p.Info.MaxContext),
			Fix: fmt.Sprintf("set context: %d or less", p.Info.MaxContext)}
	}},
	{"embedding-on-sglang-needs-flag", func(p *Model, m *config.Model, box Box) *Finding {
		if m.Engine != config.EngineSGLang || p.Info == nil || p.Info.Kind != "embedding" || engine.HasFlag(m.Args, "--is-embedding") {
			return nil
		}
		p.Args = append(p.Args, "--is-embedding")
		return &Finding{Level: LevelFixed, Reason: "SGLang serves an embedding model only with --is-embedding", Fix: "gantry adds --is-embedding"}
	}},
	{"does-not-fit", func(p *Model, m *config.Model, box Box) *Finding {
		if box.Budget <= 0 || p.Bytes <= box.Budget {
			return nil
		}
		return &Finding{Level: LevelError, Reason: fmt.Sprintf("%s needs %s but the whole budget is %s", m.Name, config.FormatBytes(p.Bytes), config.FormatBytes(box.Budget)),
			Fix: "use a smaller quantization or a shorter context:, or raise memory.total / lower memory.reserve"}
	}},
}

func isFP4(algo string) bool { return algo == "NVFP4" || algo == "MXFP4" }

func (p *Model) rules(m *config.Model, box Box) {
	for _, r := range rules {
		if f := r.check(p, m, box); f != nil {
			f.Rule = r.name
			p.Findings = append(p.Findings, *f)
		}
	}
}

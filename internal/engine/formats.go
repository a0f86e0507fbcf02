package engine

import "github.com/gantryhq/gantry/internal/config"

// Checkpoint formats, as the inventory names them.
const (
	FormatSafetensors = "safetensors" // a Hugging Face folder
	FormatPyTorch     = "pytorch"     // a Hugging Face folder of .bin weights
	FormatGGUF        = "gguf"
)

// loads is what each engine loads from disk: SGLang, vLLM and
// TensorRT-LLM a Hugging Face folder (safetensors, or PyTorch .bin files),
// llama.cpp and Ollama a GGUF file. command and sim load nothing gantry
// reads.
var loads = map[string][]string{
	config.EngineSGLang:   {FormatSafetensors, FormatPyTorch},
	config.EngineVLLM:     {FormatSafetensors, FormatPyTorch},
	config.EngineTRTLLM:   {FormatSafetensors},
	config.EngineLlamaCpp: {FormatGGUF},
	config.EngineOllama:   {FormatGGUF},
}

// Loading lists the engines that load a checkpoint of format, in the
// order of config.Engines (the seed's order of preference).
func Loading(format string) []string {
	var out []string
	for _, e := range config.Engines {
		for _, f := range loads[e] {
			if f == format {
				out = append(out, e)
			}
		}
	}
	return out
}

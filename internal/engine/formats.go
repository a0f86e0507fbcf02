package engine

import "github.com/gantryhq/gantry/internal/config"

// Checkpoint formats, as the inventory names them.
const (
	FormatSafetensors = "safetensors" // a Hugging Face folder
	FormatPyTorch     = "pytorch"     // a Hugging Face folder of .bin weights
	FormatGGUF        = "gguf"
)

// loads is what each engine loads from disk, in the seed's order of
// preference: SGLang, vLLM and TensorRT-LLM a Hugging Face folder
// (safetensors, or PyTorch .bin files), then llama.cpp and Ollama a GGUF
// file (Ollama last: the seed keeps it as a fallback). command and sim
// load nothing gantry reads.
var loads = []struct {
	engine  string
	formats []string
}{
	{config.EngineSGLang, []string{FormatSafetensors, FormatPyTorch}},
	{config.EngineVLLM, []string{FormatSafetensors, FormatPyTorch}},
	{config.EngineTRTLLM, []string{FormatSafetensors}},
	{config.EngineLlamaCpp, []string{FormatGGUF}},
	{config.EngineOllama, []string{FormatGGUF}},
}

// Loading lists the engines that load a checkpoint of format, the
// preferred first.
func Loading(format string) []string {
	var out []string
	for _, l := range loads {
		for _, f := range l.formats {
			if f == format {
				out = append(out, l.engine)
			}
		}
	}
	return out
}

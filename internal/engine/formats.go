package engine

import "slices"

// Checkpoint formats, as the inventory names them.
const (
	FormatSafetensors = "safetensors" // a Hugging Face folder
	FormatPyTorch     = "pytorch"     // a Hugging Face folder of .bin weights
	FormatGGUF        = "gguf"
)

// Loading lists the engines that load a checkpoint of format (their
// descriptors' Files.Formats), in the seed's order of preference: the
// engine it serves the format with (Files.DefaultFor) first, then the
// others in display order — SGLang, vLLM and TensorRT-LLM for a Hugging
// Face folder, llama.cpp then Ollama (the seed's fallback) for a GGUF
// file. command and sim load nothing gantry reads.
func Loading(format string) []string {
	var first, rest []string
	for _, d := range All() {
		switch {
		case !slices.Contains(d.Files.Formats, format):
		case slices.Contains(d.Files.DefaultFor, format):
			first = append(first, d.Name)
		default:
			rest = append(rest, d.Name)
		}
	}
	return append(first, rest...)
}

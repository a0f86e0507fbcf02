package engine

import (
	"path"
	"slices"
)

// Fit builds a container's command from the engine's own command and
// the image's entrypoint, as the Docker Engine reports it when the
// container is created (package container asks) — each image has its own
// launch contract:
//
//   - an entrypoint that is the engine program (llama.cpp's server image:
//     /app/llama-server; ollama/ollama: /bin/ollama), or the program and
//     its verb (vllm/vllm-openai: vllm serve), gets only what follows it;
//   - a wrapper entrypoint (NGC images: /opt/nvidia/nvidia_entrypoint.sh)
//     gets the whole command after it;
//   - no entrypoint (lmsysorg/sglang) runs the whole command.
//
// Programs are compared by base name: the image may call it by a path.
// It returns the Cmd to create the container with (the entrypoint stays
// the image's).
func Fit(entrypoint, argv []string) []string {
	if len(entrypoint) == 0 {
		return slices.Clone(argv)
	}
	n := len(entrypoint)
	if n <= len(argv) {
		match := true
		for i := range n {
			a, b := entrypoint[i], argv[i]
			if i == 0 {
				a, b = path.Base(a), path.Base(b)
			}
			if a != b {
				match = false
				break
			}
		}
		if match {
			return slices.Clone(argv[n:])
		}
	}
	return slices.Clone(argv)
}

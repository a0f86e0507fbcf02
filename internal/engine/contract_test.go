package engine_test

import (
	"slices"
	"testing"

	"github.com/gantryhq/gantry/internal/engine"
)

// The entrypoints of the images people run for these engines, from their
// Dockerfiles (cited per case), and what gantry runs in each.
func TestFitEachImagesContract(t *testing.T) {
	vllm := []string{"vllm", "serve", "/model", "--port", "8000"}
	sglang := []string{"python3", "-m", "sglang.launch_server", "--model-path", "/model"}
	llama := []string{"llama-server", "-m", "/model/m.gguf", "--port", "8080"}
	ollama := []string{"ollama", "serve"}
	trt := []string{"trtllm-serve", "/model", "--port", "8000"}
	cases := []struct {
		image, source string
		entrypoint    []string
		argv, want    []string
	}{
		// docker/Dockerfile (vllm-openai stage): ENTRYPOINT ["vllm", "serve"]
		{"vllm/vllm-openai", "vllm-project/vllm docker/Dockerfile", []string{"vllm", "serve"}, vllm, []string{"/model", "--port", "8000"}},
		// NGC containers start through NVIDIA's wrapper, which execs "$@".
		{"nvcr.io/nvidia/vllm", "NGC container entrypoint", []string{"/opt/nvidia/nvidia_entrypoint.sh"}, vllm, vllm},
		{"nvcr.io/nvidia/tensorrt-llm/release", "NGC container entrypoint", []string{"/opt/nvidia/nvidia_entrypoint.sh"}, trt, trt},
		// docker/Dockerfile of sgl-project/sglang: no ENTRYPOINT.
		{"lmsysorg/sglang", "sgl-project/sglang docker/Dockerfile", nil, sglang, sglang},
		// .devops/cuda.Dockerfile (server target): ENTRYPOINT [ "/app/llama-server" ]
		{"ghcr.io/ggml-org/llama.cpp:server-cuda", "ggml-org/llama.cpp .devops/cuda.Dockerfile", []string{"/app/llama-server"}, llama, []string{"-m", "/model/m.gguf", "--port", "8080"}},
		// ollama/ollama Dockerfile: ENTRYPOINT ["/bin/ollama"], CMD ["serve"]
		{"ollama/ollama", "ollama/ollama Dockerfile", []string{"/bin/ollama"}, ollama, []string{"serve"}},
		// A program entrypoint for another verb is a wrapper to gantry.
		{"odd", "", []string{"vllm", "bench"}, vllm, vllm},
	}
	for _, c := range cases {
		if got := engine.Fit(c.entrypoint, c.argv); !slices.Equal(got, c.want) {
			t.Errorf("%s (%s): entrypoint %q → cmd %q, want %q", c.image, c.source, c.entrypoint, got, c.want)
		}
	}
}

package engine

import (
	"strconv"

	"github.com/gantryhq/gantry/internal/progress"
)

// Ollama is the name of Ollama's engine: one `ollama serve` hosts every
// ollama model; gantry keeps them loaded (OLLAMA_KEEP_ALIVE=-1) and
// decides when to unload them.
const Ollama = "ollama"

func init() {
	register(&Descriptor{
		Name: Ollama, Title: "Ollama", Order: 40,
		Port:    11434,
		Runtime: RuntimeNative,
		Program: "ollama",
		// ollama/ollama's entrypoint is /bin/ollama; its store is mounted.
		Container: Container{Image: "ollama/ollama:0.6.5", Store: "/root/.ollama/models"},
		Files:     Files{Formats: []string{FormatGGUF}, TagExample: "qwen3:8b", DefaultContext: true},
		Shared:    "ollama serve",
		Command:   ollamaCommand,
		Health:    func(Model) Health { return healthAt("/api/version") },
		Memory:    Memory{Overhead: 512 << 20},
		// Its OpenAI layer reads max_tokens only (openai/openai.go:
		// ChatCompletionRequest.MaxTokens `json:"max_tokens"` → num_predict,
		// v0.6.5 and v0.17.4 alike, and still at v0.33.0-rc2): the
		// max_completion_tokens that OpenAI's SDKs and LangChain send is
		// ignored, and the answer runs to the end of the context
		// (ollama/ollama#7125).
		Renames: []Rename{{From: "max_completion_tokens", To: "max_tokens"}},
		Sim:     Imitation{Listen: ListenAtOnce, Version: "0.6.5-sim"},
		// Its server's own lines (the DEBUG line carries the fraction); real
		// lines in progress_test.go (ollama/ollama#10517, #5123).
		LoadLines: []progress.Milestone{
			milestone(`model load progress (?P<f>[\d.]+)`, progress.Weights, -1),
			milestone(`llm server loading model|starting llama server`, progress.Weights, -1),
		},
	})
}

func ollamaCommand(m Model) (Cmd, error) {
	ctxLen := int(m.Plan.Context)
	if ctxLen == 0 {
		ctxLen = 8192 // recent Ollama picks 256K on big boxes; be explicit
	}
	return Cmd{
		Argv: append(program(m, "serve"), m.Args...),
		Env: []string{"OLLAMA_HOST=" + m.Host + ":" + strconv.Itoa(m.Port), "OLLAMA_MODELS=" + m.Store,
			"OLLAMA_KEEP_ALIVE=-1", "OLLAMA_CONTEXT_LENGTH=" + strconv.Itoa(ctxLen)},
	}, nil
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// pythonClients is the Python that has the official client libraries
// (openai, anthropic, ollama, langchain-openai); ./test.sh installs them
// into a venv under ~/.cache/gantry-test.
func pythonClients(t *testing.T) string {
	t.Helper()
	p := os.Getenv("GANTRY_CLIENTS_PYTHON")
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "gantry-test", "clients", "bin", "python")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the client libraries' Python is missing (%v): run ./test.sh, which installs it", err)
	}
	return p
}

// runClient runs one of e2e/clients/*.py with env; it prints "ok" when
// every assertion held.
func runClient(t *testing.T, script string, env ...string) {
	t.Helper()
	out, err := clientCmd(t, script, env...).CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
		t.Errorf("%s %v: %v\n%s", script, env, err, out)
	}
}

// clientCmd prepares a client script's run: isolated (-I) from the
// PYTHON* settings of the environment, which could switch its asserts off
// (PYTHONOPTIMIZE), stop it at a prompt (PYTHONINSPECT) or load other code
// (PYTHONPATH, PYTHONSTARTUP) — and without them in its environment either.
func clientCmd(t *testing.T, script string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(pythonClients(t), "-I", filepath.Join("clients", script))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHON") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

const clientsConfig = `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
ollama_api: {listen: "OLLAMA_LISTEN"}
models:
  chat: {engine: sim, memory: 1GiB, aliases: [default], args: [--flavor, vllm, --itl, 2ms, --tokens, "8"]}
  emb: {engine: sim, memory: 1GiB, args: [--embedding]}
`

// TestOfficialClients: the OpenAI, Anthropic and Ollama Python libraries
// and LangChain's ChatOpenAI / OpenAIEmbeddings,
// unchanged, against gantry's gateway, Messages, Responses and Ollama APIs
// on simulated engines (which answer tool choices and count tokens as
// vLLM does). Tools, token counting, base64 embeddings and media (audio,
// images) run against the sim only: the suite's real engines serve a tiny
// random model, which emits no tool call, and none of them serves audio or
// images. TestOfficialClientsOnRealOllama runs the rest — embeddings and
// LangChain included — against a real engine.
func TestOfficialClients(t *testing.T) {
	olisten := "127.0.0.1:" + itoa(int64(testbin.FreePort(t)))
	d := startDaemon(t, strings.ReplaceAll(clientsConfig, "OLLAMA_LISTEN", olisten))
	base := []string{"GANTRY_URL=" + d.url, "GANTRY_OLLAMA_URL=http://" + olisten, "MODEL=default", "EMBED=emb"}
	runClient(t, "openai_client.py", append(base, "TOOLS=1", "MEDIA=1")...)
	runClient(t, "anthropic_client.py", append(base, "TOOLS=1", "COUNT=1")...)
	runClient(t, "ollama_client.py", append(base[:len(base)-2], "MODEL=chat", "EMBED=emb")...)
	runClient(t, "langchain_client.py", base...)
}

// TestOfficialClientsOnRealOllama: the same libraries through gantry to a
// real engine (Ollama serving the tiny GGUF): translation, not simulation —
// chat, streams, the Responses and Messages APIs, embeddings (Ollama's own,
// as floats: it ignores encoding_format, ollama/ollama#6934) and
// LangChain's chat and embeddings.
func TestOfficialClientsOnRealOllama(t *testing.T) {
	olisten := "127.0.0.1:" + itoa(int64(testbin.FreePort(t)))
	d := ollamaDaemon(t, "10m", `ollama_api: {listen: "`+olisten+`"}`+"\n")
	env := []string{"GANTRY_URL=" + d.url, "GANTRY_OLLAMA_URL=http://" + olisten, "MODEL=tiny", "EMBED=tiny"}
	runClient(t, "openai_client.py", append(env, "EMBED_B64=0")...)
	runClient(t, "anthropic_client.py", env...)
	runClient(t, "ollama_client.py", env...)
	// LangChain's max_tokens goes out as max_completion_tokens, which
	// Ollama ignores (ollama/ollama#7125): gantry renames it to the
	// max_tokens Ollama reads, and the script checks that the limit holds.
	runClient(t, "langchain_client.py", env...)
	d.waitState("tiny", "ready", 10*time.Second)
}

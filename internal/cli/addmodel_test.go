package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const before = `# gantry on spark1 — keep this comment
listen: 127.0.0.1:4000

memory: {total: 120GiB, reserve: 8GiB}

models:
  # the seed's first model
  demo:
    engine: sim      # simulated
    memory: 1GiB
    args: [--load-time, 1s]

# the peers come next
peers:
  spark2: {url: "http://spark2:4000"}
`

// TestInsertModelKeepsTheRest: the entry goes at the end of models:,
// every other byte stays.
func TestInsertModelKeepsTheRest(t *testing.T) {
	m := newModel{Name: "qwen3-8b", Comment: "Qwen/Qwen3-8B@8df2c526b98b (gantry get)", Engine: "vllm",
		Path: "qwen3/qwen3-8b", Runtime: "native", Context: 32768, Args: []string{"--max-num-seqs", "8"}}
	got, err := insertModel([]byte(before), m)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(before, "    args: [--load-time, 1s]\n", `    args: [--load-time, 1s]
  qwen3-8b:  # Qwen/Qwen3-8B@8df2c526b98b (gantry get)
    engine: vllm
    path: qwen3/qwen3-8b
    runtime: native
    context: 32768
    args: [--max-num-seqs, "8"]
`, 1)
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := insertModel(got, m); err == nil || !strings.Contains(err.Error(), "models.qwen3-8b is in the config already (line 12)") {
		t.Errorf("a second add: %v", err)
	}
	// No models: yet, and models: written in flow style.
	got, _ = insertModel([]byte("listen: 127.0.0.1:4000\n"), newModel{Name: "a", Engine: "sim", Memory: "1GiB"})
	if string(got) != "listen: 127.0.0.1:4000\nmodels:\n  a:\n    engine: sim\n    memory: 1GiB\n" {
		t.Errorf("no models: %q", got)
	}
	got, _ = insertModel([]byte("models:\nlisten: x\n"), newModel{Name: "a", Engine: "sim"})
	if string(got) != "models:\n  a:\n    engine: sim\nlisten: x\n" {
		t.Errorf("empty models: %q", got)
	}
	if _, err := insertModel([]byte("models: {a: {engine: sim}}\n"), newModel{Name: "b", Engine: "sim"}); err == nil || !strings.Contains(err.Error(), "add this yourself") {
		t.Errorf("flow style: %v", err)
	}
}

// TestAddModelValidatesFirst: an entry that makes the config invalid is
// refused with the problems, and the file is left as it was.
func TestAddModelValidatesFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gantry.yaml")
	os.WriteFile(path, []byte(before), 0o600)
	err := addModel(context.Background(), path, newModel{Name: "bad", Engine: "vllm", Path: "/nowhere/at/all", Runtime: "native", Args: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), "models.bad was not added") || !strings.Contains(err.Error(), "models.bad.path") {
		t.Errorf("invalid: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != before {
		t.Errorf("the file changed:\n%s", b)
	}
	if err := addModel(context.Background(), path, newModel{Name: "ok", Engine: "sim", Memory: "1GiB"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !strings.HasPrefix(string(b), "# gantry on spark1 — keep this comment\n") || !strings.Contains(string(b), "  ok:\n    engine: sim\n") {
		t.Errorf("after add:\n%s", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
}

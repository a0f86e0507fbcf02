package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/gguf"
)

// TestInspectTinyGGUF: gantry inspect on a GGUF the test writes reports its
// architecture, file type, exact parameter count and tensor bytes.
func TestInspectTinyGGUF(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.gguf")
	written, err := gguf.TinyLlama(path, gguf.Tiny{})
	if err != nil {
		t.Fatal(err)
	}
	var params int64
	for _, w := range written {
		params += int64(len(w.Data))
	}
	out, code := run(t, dir, "inspect", path, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var got struct {
		Path, Format, Architecture, Kind string
		Params                           int64
		WeightBytes                      int64 `json:"weight_bytes"`
		KV                               int64 `json:"kv_bytes_per_token"`
		MaxContext                       int64 `json:"max_context"`
		Quantization                     struct{ Method, Algo string }
		Estimate                         int64 `json:"estimate_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Format != "gguf" || got.Architecture != "llama" || got.Params != params || got.WeightBytes != params*4 ||
		got.Quantization.Algo != "F32" || got.Kind != "generation" || got.MaxContext != 512 || got.Estimate <= got.WeightBytes {
		t.Errorf("%+v (want %d params)", got, params)
	}
	text, code := run(t, dir, "inspect", path)
	if code != 0 || !strings.Contains(text, "F32") || !strings.Contains(text, "llama") {
		t.Errorf("text: %s", text)
	}
}

// TestInitModelsDocsDoctor walks the offline verbs over a tree with a
// fixture checkpoint (real config.json, sparse weights) and a GGUF.
func TestInitModelsDocsDoctor(t *testing.T) {
	home := t.TempDir()
	root := filepath.Join(home, "ai")
	out, code := run(t, home, "init", "--root", root)
	if code != 0 || !fileExists(filepath.Join(root, "models", "embeddings")) || !fileExists(filepath.Join(root, "cache", "vllm")) {
		t.Fatalf("init: %s", out)
	}
	// Put models in, then write the config again from what is there.
	if _, err := gguf.TinyLlama(filepath.Join(root, "models", "tiny.gguf"), gguf.Tiny{}); err != nil {
		t.Fatal(err)
	}
	qdir := filepath.Join(root, "models", "qwen3", "Qwen3-8B")
	os.MkdirAll(qdir, 0o755)
	cfg, err := os.ReadFile("../internal/inventory/testdata/models/Qwen--Qwen3-8B/config.json")
	if err != nil {
		t.Fatalf("the fixture: %v", err)
	}
	os.WriteFile(filepath.Join(qdir, "config.json"), cfg, 0o644)
	writeSparseSafetensors(t, filepath.Join(qdir, "model.safetensors"), 16381470720)

	out, code = run(t, home, "init", "--root", root, "--force")
	if code != 0 || !strings.Contains(out, "2 model(s)") {
		t.Fatalf("init --force: %s", out)
	}
	cfgPath := filepath.Join(root, "configs", "gantry", "gantry.yaml")
	out, code = run(t, home, "config", "validate", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("the config init wrote does not validate: %s", out)
	}
	b, _ := os.ReadFile(cfgPath)
	if !strings.Contains(string(b), "engine: llamacpp") || !strings.Contains(string(b), "engine: sglang") {
		t.Errorf("starter config:\n%s", b)
	}

	out, code = run(t, home, "models", "--json", "--config", cfgPath, "--server", "http://127.0.0.1:1")
	if code != 0 {
		t.Fatalf("models: %s", out)
	}
	var rows []struct {
		Name        string
		OnDisk      bool `json:"on_disk"`
		Configured  bool
		Served      string
		WeightBytes int64 `json:"weight_bytes"`
		Estimate    int64 `json:"estimate_bytes"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &rows); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	for _, r := range rows {
		if !r.OnDisk || !r.Configured || r.Served != "unknown" || r.Estimate <= r.WeightBytes {
			t.Errorf("row %+v", r)
		}
		if r.Name == "qwen3-8b" && r.WeightBytes != 16381470720 {
			t.Errorf("qwen weights %d", r.WeightBytes)
		}
	}

	docs := filepath.Join(home, "docs")
	out, code = run(t, home, "docs", "--config", cfgPath, "--out", docs, "--server", "http://127.0.0.1:1")
	ep, _ := os.ReadFile(filepath.Join(docs, "inference_endpoints.md"))
	inv, _ := os.ReadFile(filepath.Join(docs, "model_inventory.md"))
	if code != 0 || !strings.Contains(string(ep), "| qwen3-8b |") || !strings.Contains(string(inv), "15.3GiB") {
		t.Errorf("docs: %s\n%s\n%s", out, ep, inv)
	}

	out, code = run(t, home, "doctor", "--config", cfgPath, "--json", "--server", "http://127.0.0.1:1")
	var checks []struct{ Area, Status, Message string }
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "]")+1]), &checks); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	areas := map[string]bool{}
	for _, c := range checks {
		areas[c.Area] = true
	}
	for _, a := range []string{"config", "gpu", "memory", "root"} {
		if !areas[a] {
			t.Errorf("doctor has no %s check: %s", a, out)
		}
	}
	// The sglang model runs in docker, which this machine lacks: doctor says so and fails.
	if code == 0 || !strings.Contains(out, "docker") {
		t.Errorf("doctor exit %d: %s", code, out)
	}
}

func TestAPIInventory(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  m: {engine: sim, memory: 1GiB}
`)
	os.MkdirAll(filepath.Join(d.home, "ai", "models"), 0o755)
	gguf.TinyLlama(filepath.Join(d.home, "ai", "models", "t.gguf"), gguf.Tiny{})
	resp, err := http.Get(d.url + "/api/inventory")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Models []struct {
			Name   string
			OnDisk bool `json:"on_disk"`
			Served string
		}
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if len(body.Models) != 2 || body.Models[0].Name != "m" || body.Models[0].Served != "stopped" || !body.Models[1].OnDisk {
		t.Errorf("%+v", body)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// writeSparseSafetensors writes one tensor header of n bytes over a sparse file.
func writeSparseSafetensors(t *testing.T, path string, n int64) {
	hdr := `{"w":{"dtype":"BF16","shape":[` + itoa(n/2) + `],"data_offsets":[0,` + itoa(n) + `]}}`
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := uint64(len(hdr))
	f.Write([]byte{byte(l), byte(l >> 8), byte(l >> 16), byte(l >> 24), 0, 0, 0, 0})
	f.WriteString(hdr)
	f.Truncate(8 + int64(len(hdr)) + n)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

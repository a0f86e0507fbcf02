package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/fit"
	"github.com/gantryhq/gantry/internal/gguf"
	"github.com/gantryhq/gantry/internal/hub/hubtest"
	"github.com/gantryhq/gantry/internal/testbin"
)

// hubStandIn is the stand-in Hub with the suite's fixtures, the tiny
// model included.
func hubStandIn(t *testing.T) (*hubtest.Server, map[string]string) {
	t.Helper()
	_, model := vllmBin(t)
	return hubtest.ForTest(t, model)
}

// gantryEnv runs a gantry verb with env added to the clean environment.
func gantryEnv(t *testing.T, home string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testbin.Gantry(t), args...)
	cmd.Env = append(append(cleanEnv(), "HOME="+home), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestHubFitThenGetThenInspect: fit reads a repository with no weight
// byte served; get downloads it; inspect of the downloaded files gives
// the same figures and the same reservation per engine — the tiny model
// (safetensors) and the GGUF.
func TestHubFitThenGetThenInspect(t *testing.T) {
	s, commits := hubStandIn(t)
	home := t.TempDir()
	root := filepath.Join(home, "ai")
	env := []string{"HF_ENDPOINT=" + s.URL}
	for _, repo := range []string{hubtest.TinyRepo, hubtest.GGUFRepo} {
		s.ResetCounters()
		out, errOut, code := gantryEnv(t, home, env, "fit", repo, "--root", root, "--json")
		if code != 0 {
			t.Fatalf("fit %s: %d %s %s", repo, code, out, errOut)
		}
		if w := s.WeightsServed(); w != 0 {
			t.Errorf("fit %s served %d weight bytes", repo, w)
		}
		var f fit.Result
		if err := json.Unmarshal([]byte(out), &f); err != nil || f.Commit != commits[repo] {
			t.Fatalf("fit %s: %v %s", repo, err, out)
		}
		out, errOut, code = gantryEnv(t, home, env, "get", repo, "--root", root)
		if code != 0 {
			t.Fatalf("get %s: %d %s %s", repo, code, out, errOut)
		}
		if !strings.Contains(errOut, "→ "+f.Download.Dest) {
			t.Errorf("get did not say where before the first byte:\n%s", errOut)
		}
		src, err := fetch.ReadSource(f.Download.Dest)
		if err != nil || !src.Complete || src.Commit != commits[repo] {
			t.Fatalf("record: %+v %v", src, err)
		}
		target := f.Download.Dest
		if f.Format == "gguf" {
			for _, sf := range src.Files {
				if strings.HasSuffix(sf.Path, ".gguf") {
					target = filepath.Join(f.Download.Dest, sf.Path)
				}
			}
		}
		for _, v := range f.Boxes[0].Verdicts {
			out, errOut, code = gantryEnv(t, home, nil, "inspect", target, "--json", "--engine", v.Engine, "--root", root)
			if code != 0 {
				t.Fatalf("inspect %s: %s %s", target, out, errOut)
			}
			var in struct {
				Params       int64  `json:"params"`
				WeightBytes  int64  `json:"weight_bytes"`
				KVPerToken   int64  `json:"kv_bytes_per_token"`
				MaxContext   int64  `json:"max_context"`
				DType        string `json:"dtype"`
				Tensors      int    `json:"tensors"`
				ChatTemplate bool   `json:"chat_template"`
				Context      int64  `json:"context"`
				Estimate     int64  `json:"estimate_bytes"`
			}
			json.Unmarshal([]byte(out), &in)
			m := f.Model
			if in.Params != m.Params || in.WeightBytes != m.WeightBytes || in.KVPerToken != m.BytesPerToken || in.MaxContext != m.MaxContext ||
				in.DType != m.DType || in.Tensors != m.Tensors || in.ChatTemplate != m.ChatTemplate {
				t.Errorf("%s: inspect %+v, fit %+v", repo, in, m)
			}
			if in.Estimate != v.NeedsBytes || in.Context != v.Context {
				t.Errorf("%s %s: inspect reserves %d at %d, fit %d at %d", repo, v.Engine, in.Estimate, in.Context, v.NeedsBytes, v.Context)
			}
		}
	}
}

// TestHubGetResumesAfterKill9: a get killed with SIGKILL mid-file, run
// again, fetches the rest: the bytes served in both runs are the file's
// size and at most one chunk (gantry's 1 MiB read) more.
func TestHubGetResumesAfterKill9(t *testing.T) {
	s, _ := hubStandIn(t)
	home := t.TempDir()
	root := filepath.Join(home, "ai")
	s.Throttle(1 << 20)
	half := make(chan struct{})
	var once sync.Once
	s.OnServed(func(p string, n int64) {
		if p == "model.safetensors" && n > 2<<20 {
			once.Do(func() { close(half) })
		}
	})
	cmd := exec.Command(testbin.Gantry(t), "get", hubtest.TinyRepo, "--root", root)
	cmd.Env = append(cleanEnv(), "HOME="+home, "HF_ENDPOINT="+s.URL)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-half:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the download did not get halfway:\n%s", errOut.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	s.Throttle(0)
	out, e, code := gantryEnv(t, home, []string{"HF_ENDPOINT=" + s.URL}, "get", hubtest.TinyRepo, "--root", root)
	if code != 0 {
		t.Fatalf("second get: %s %s", out, e)
	}
	st, err := os.Stat(filepath.Join(root, "models", "llama", "tiny-llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ServedOf("model.safetensors"); got > st.Size()+1<<20 || !strings.Contains(e, "resuming at") {
		t.Errorf("model.safetensors: %d bytes served for %d\n%s", got, st.Size(), e)
	}
}

// TestHubGetRefusals: gated, forbidden, missing repository and revision,
// offline, a corrupted file, a disk too small: each refused in words that
// say what to do, with exit 1, no trace, and nothing left in place.
func TestHubGetRefusals(t *testing.T) {
	s, _ := hubStandIn(t)
	home := t.TempDir()
	root := filepath.Join(home, "ai")
	hubEnv := "HF_ENDPOINT=" + s.URL
	for _, c := range []struct {
		env  []string
		repo string
		want string
	}{
		{nil, hubtest.LlamaRepo, "is gated: accept its licence at " + s.URL + "/" + hubtest.LlamaRepo},
		{[]string{"HF_TOKEN=hf_notallowed"}, hubtest.LlamaRepo, "not on its authorized list"},
		{nil, "nobody/nothing", "nobody/nothing was not found on " + s.URL},
		{nil, hubtest.QwenRepo + "@v9", `has no revision "v9"`},
		{[]string{"HF_HUB_OFFLINE=1"}, hubtest.TinyRepo, "HF_HUB_OFFLINE is set"},
	} {
		out, e, code := gantryEnv(t, home, append([]string{hubEnv}, c.env...), "get", c.repo, "--root", root)
		if code != 1 || !strings.Contains(e, c.want) || strings.Contains(e+out, "goroutine") {
			t.Errorf("get %s %v: exit %d, %s%s (want %q)", c.repo, c.env, code, out, e, c.want)
		}
	}
	s.Corrupt("model.safetensors", true)
	out, e, code := gantryEnv(t, home, []string{hubEnv}, "get", hubtest.TinyRepo, "--root", root)
	dest := filepath.Join(root, "models", "llama", "tiny-llama")
	if code != 1 || !strings.Contains(e, "model.safetensors has sha256") || !strings.Contains(e, "the file was deleted") {
		t.Errorf("corrupted: exit %d %s %s", code, out, e)
	}
	if _, err := os.Stat(filepath.Join(dest, "model.safetensors")); !os.IsNotExist(err) {
		t.Errorf("the corrupted file was placed: %v", err)
	}
	s.Corrupt("model.safetensors", false)
	// A small tmpfs as <root>/models: refused before the first weight byte.
	small := filepath.Join(t.TempDir(), "ai")
	os.MkdirAll(filepath.Join(small, "models"), 0o755)
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", filepath.Join(small, "models")).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs: %v %s", err, b)
	}
	defer exec.Command("umount", filepath.Join(small, "models")).Run()
	s.ResetCounters()
	out, e, code = gantryEnv(t, home, []string{hubEnv}, "get", hubtest.TinyRepo, "--root", small)
	if code != 1 || !strings.Contains(e, "not enough disk at "+filepath.Join(small, "models", "llama", "tiny-llama")) || s.WeightsServed() != 0 {
		t.Errorf("full disk: exit %d, %d weight bytes served: %s %s", code, s.WeightsServed(), out, e)
	}
}

// TestHubTwoGetsShareOne: two gets of one model at once fetch it once.
func TestHubTwoGetsShareOne(t *testing.T) {
	s, _ := hubStandIn(t)
	home := t.TempDir()
	root := filepath.Join(home, "ai")
	s.Throttle(2 << 20)
	var wg sync.WaitGroup
	outs := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, e, code := gantryEnv(t, home, []string{"HF_ENDPOINT=" + s.URL}, "get", hubtest.TinyRepo, "--root", root)
			outs[i] = o + e
			if code != 0 {
				t.Errorf("get %d: %s", i, outs[i])
			}
		}()
	}
	wg.Wait()
	// The weights went out once (each get's fit read the header too).
	b, err := os.ReadFile(filepath.Join(root, "models", "llama", "tiny-llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	weights := int64(len(b)) - 8 - int64(binary.LittleEndian.Uint64(b))
	if s.WeightsServed() != weights {
		t.Errorf("served %d weight bytes of model.safetensors, which holds %d", s.WeightsServed(), weights)
	}
	if !strings.Contains(outs[0]+outs[1], "another download of "+hubtest.TinyRepo) {
		t.Errorf("neither waited:\n%s\n%s", outs[0], outs[1])
	}
}

// TestHubGetRecipe: get --recipe downloads the recipe's repository (its
// GGUF quantization only) and adds it to the config with the recipe's
// engine, flags and context, keeping the rest of the file; the config
// stays valid.
func TestHubGetRecipe(t *testing.T) {
	s, _ := hubStandIn(t)
	dir := t.TempDir()
	var files []*hubtest.File
	for _, q := range []struct {
		name string
		typ  gguf.GGMLType
	}{{"Qwen3-Embedding-4B-Q8_0.gguf", gguf.Q8_0}, {"Qwen3-Embedding-4B-f16.gguf", gguf.F16}} {
		p := filepath.Join(dir, q.name)
		if _, err := gguf.TinyLlama(p, gguf.Tiny{Type: q.typ, Context: 8192}); err != nil {
			t.Fatal(err)
		}
		f, err := hubtest.OnDisk(q.name, p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if _, err := s.Push("Qwen/Qwen3-Embedding-4B-GGUF", files...); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cfg := filepath.Join(home, "gantry.yaml")
	before := "# my box\nroot: " + filepath.Join(home, "ai") + "\n\nmodels:\n  demo: {engine: sim, memory: 1GiB}  # keep me\n\n# the end\n"
	os.WriteFile(cfg, []byte(before), 0o644)
	out, e, code := gantryEnv(t, home, []string{"HF_ENDPOINT=" + s.URL}, "get", "--recipe", "qwen3-embedding-4b-gguf", "--config", cfg)
	if code != 0 {
		t.Fatalf("get --recipe: %d %s %s", code, out, e)
	}
	b, _ := os.ReadFile(cfg)
	got := string(b)
	for _, want := range []string{"# my box\n", "  demo: {engine: sim, memory: 1GiB}  # keep me\n", "\n# the end\n",
		"  qwen3-embedding-4b-gguf:  # recipe qwen3-embedding-4b-gguf: Qwen/Qwen3-Embedding-4B-GGUF@",
		"    engine: llamacpp\n    path: llama/qwen3-embedding-4b-gguf/Qwen3-Embedding-4B-Q8_0.gguf\n    context: 8192\n    args: [--embeddings, --jinja]\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "f16") {
		t.Errorf("another quantization was taken:\n%s", got)
	}
	if out, _, code := gantryEnv(t, home, nil, "config", "validate", "--config", cfg); code != 0 {
		t.Errorf("config validate: %s", out)
	}
}

// TestHubGetAddServes: get --add writes the tiny model (vLLM) and the
// GGUF (Ollama) into a config, and gantry serves both with the real
// engines; the Hugging Face cache layout get --to hf-cache writes is
// what vLLM finds by name with HF_HUB_OFFLINE=1.
func TestHubGetAddServes(t *testing.T) {
	bin, _ := vllmBin(t)
	s, _ := hubStandIn(t)
	t.Setenv("VLLM_CPU_KVCACHE_SPACE", "1")
	t.Setenv("VLLM_CPU_OMP_THREADS_BIND", "nobind")
	home := t.TempDir()
	port := testbin.FreePort(t)
	cfg := filepath.Join(home, "gantry.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`# a box with nothing yet
listen: 127.0.0.1:%d
root: %s
memory: {total: 16GiB, reserve: 0GiB}
engines:
  vllm: {binary: %q}
  ollama: {binary: %q, port: %d}

models:
  keep: {engine: sim, memory: 1GiB}   # stays as it is
`, port, filepath.Join(home, "ai"), bin, ollamaBin(t), testbin.FreePort(t))), 0o644)
	env := []string{"HF_ENDPOINT=" + s.URL}
	for _, args := range [][]string{
		{"get", hubtest.TinyRepo, "--engine", "vllm", "--runtime", "native", "--context", "512", "--add"},
		{"get", hubtest.GGUFRepo, "--engine", "ollama", "--quant", "Q8_0", "--add"},
	} {
		out, e, code := gantryEnv(t, home, env, append(args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("%v: %s %s", args, out, e)
		}
	}
	b, _ := os.ReadFile(cfg)
	if !strings.Contains(string(b), "  keep: {engine: sim, memory: 1GiB}   # stays as it is\n  tiny-llama:  # gantry-test/tiny-llama@") ||
		!strings.Contains(string(b), "    engine: ollama\n    path: llama/tiny-llama-gguf-q8_0/tiny-llama-Q8_0.gguf\n") {
		t.Fatalf("the config:\n%s", b)
	}
	d := &daemon{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), home: home, config: cfg, out: newSyncBuffer(),
		args: []string{"serve", "--config", cfg}}
	d.launch()
	for _, m := range []string{"tiny-llama", "tiny-llama-gguf-q8_0"} {
		if out, code := d.gantry("start", m); code != 0 {
			t.Fatalf("start %s: %s\n%s", m, out, d.logs(m))
		}
		c := d.oai("")
		ans, err := c.Chat.Completions.New(context.Background(), chatParams(m, "hi"))
		if err != nil || len(ans.Choices) == 0 {
			t.Fatalf("chat with %s: %v\n%s", m, err, d.logs(m))
		}
		d.gantry("stop", m)
	}
	// The cache layout: vLLM serves the model by its name, offline.
	cache := filepath.Join(home, "hf")
	if out, e, code := gantryEnv(t, home, append(env, "HF_HUB_CACHE="+cache), "get", hubtest.TinyRepo, "--to", "hf-cache", "--config", cfg); code != 0 {
		t.Fatalf("get --to hf-cache: %s %s", out, e)
	}
	vport := testbin.FreePort(t)
	cmd := exec.Command(bin, "serve", hubtest.TinyRepo, "--port", fmt.Sprint(vport), "--max-model-len", "512")
	cmd.Env = append(cleanEnv(), "HOME="+home, "HF_HUB_CACHE="+cache, "HF_HUB_OFFLINE=1", "HF_ENDPOINT=http://127.0.0.1:1")
	logs := newSyncBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", vport)
	ready := false
	for deadline := time.Now().Add(8 * time.Minute); time.Now().Before(deadline) && !ready; {
		if r, err := http.Get(base + "/health"); err == nil {
			r.Body.Close()
			ready = r.StatusCode == 200
		}
		if !ready {
			time.Sleep(time.Second) // polling readiness, not deciding a verdict
		}
	}
	if !ready {
		t.Fatalf("vLLM did not serve %s from the cache offline:\n%s", hubtest.TinyRepo, logs.String())
	}
	code, body := post(t, base+"/v1/chat/completions", `{"model":"`+hubtest.TinyRepo+`","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`)
	if code != 200 {
		t.Errorf("vLLM by name: %d %s", code, body)
	}
}

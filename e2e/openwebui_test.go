package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/gantryhq/gantry/internal/testbin"
)

// openWebUI is the `open-webui` of the venv ./test.sh installs from PyPI
// (open-webui 0.12.4) and names in GANTRY_OPENWEBUI.
func openWebUI(t *testing.T) string {
	t.Helper()
	return installed(t, "GANTRY_OPENWEBUI", "Open WebUI")
}

// startOpenWebUI runs Open WebUI as a user points it at gantry: one
// OpenAI connection to gantry's /v1 with gantry's key, Ollama's off, auth
// off — and offline: no model downloads, no update checks, no telemetry
// (retrieval's embedding model is not there, and Open WebUI says so and
// goes on). It returns Open WebUI's URL once /health answers.
func startOpenWebUI(t *testing.T, gantryURL, key string) string {
	t.Helper()
	data := t.TempDir()
	port := testbin.FreePort(t)
	cmd := exec.Command(openWebUI(t), "serve", "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	cmd.Dir = data
	cmd.Env = append(cleanEnv(), "HOME="+data, "DATA_DIR="+data,
		"WEBUI_AUTH=False", "WEBUI_SECRET_KEY=gantry-e2e",
		"ENABLE_OLLAMA_API=False", "OPENAI_API_BASE_URL="+gantryURL+"/v1", "OPENAI_API_KEY="+key,
		"OFFLINE_MODE=True", "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "RAG_EMBEDDING_MODEL_AUTO_UPDATE=False",
		"ENABLE_VERSION_UPDATE_CHECK=False", "ANONYMIZED_TELEMETRY=False", "DO_NOT_TRACK=true", "SCARF_NO_ANALYTICS=true")
	log := newSyncBuffer()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("Open WebUI's output:\n%s", tailLines(log.String(), 60))
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("Open WebUI exited:\n%s", tailLines(log.String(), 60))
		default:
		}
		if r, err := http.Get(url + "/health"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return url
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("Open WebUI did not answer /health within 3 minutes:\n%s", tailLines(log.String(), 60))
	return ""
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// owui calls Open WebUI's own API with token and decodes its JSON answer.
func owui(t *testing.T, method, url, token, body string, v any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v: %.300s", method, url, err, b)
		}
	}
}

// TestOpenWebUI points a real Open WebUI at gantry: its model list shows
// gantry's models, aliases and presets, a chat through Open WebUI's own API
// reaches a gantry model streamed and not, and a chat typed into its page in
// headless Chromium is answered through gantry (the screenshot is the
// README's).
func TestOpenWebUI(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
auth: {api_keys: [sk-webui]}
memory: {total: 64GiB, reserve: 0GiB}
models:
  qwen3: {engine: sim, memory: 8GiB, mode: always-on, aliases: [default], args: [--flavor, sglang, --itl, 10ms, --tokens, "24"]}
  scout: {engine: sim, memory: 16GiB, args: [--load-time, 300ms, --itl, 10ms]}
presets:
  qwen3-fast: {model: qwen3, set: {temperature: 0.2}}
`)
	d.waitState("qwen3", "ready", 20*time.Second)
	ui := startOpenWebUI(t, d.url, "sk-webui")
	var auth struct{ Token string }
	owui(t, "POST", ui+"/api/v1/auths/signin", "", `{"email":"","password":""}`, &auth)
	if auth.Token == "" {
		t.Fatal("no token from Open WebUI's sign-in with auth off")
	}

	var models struct {
		Data []struct{ ID string }
	}
	owui(t, "GET", ui+"/api/models", auth.Token, "", &models)
	got := map[string]bool{}
	for _, m := range models.Data {
		got[m.ID] = true
	}
	for _, want := range []string{"qwen3", "default", "scout", "qwen3-fast"} {
		if !got[want] {
			t.Errorf("Open WebUI's model list lacks %s: %v", want, got)
		}
	}

	var answer struct {
		Choices []struct{ Message struct{ Content string } }
	}
	owui(t, "POST", ui+"/api/chat/completions", auth.Token,
		`{"model":"scout","stream":false,"messages":[{"role":"user","content":"Hallo"}]}`, &answer)
	if len(answer.Choices) != 1 || !strings.Contains(answer.Choices[0].Message.Content, "Hallo from the simulated engine") {
		t.Errorf("a chat through Open WebUI: %+v", answer)
	}
	if st := d.status().Model("scout"); st.State != "ready" {
		t.Errorf("the chat through Open WebUI did not start scout on gantry: %s", st.State)
	}

	req, _ := http.NewRequest("POST", ui+"/api/chat/completions",
		strings.NewReader(`{"model":"default","stream":true,"messages":[{"role":"user","content":"Hallo"}]}`))
	req.Header.Set("Authorization", "Bearer "+auth.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events, done := 0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "data: [DONE]":
			done = true
		case strings.HasPrefix(line, "data: {"):
			events++
		}
	}
	resp.Body.Close()
	if !done || events < 24 {
		t.Errorf("a stream through Open WebUI: %d events, [DONE] %v", events, done)
	}

	t.Run("a chat in Open WebUI's page", func(t *testing.T) {
		ctx := browser(t)
		// ?models= picks the model and ?q= fills in the prompt, as Open
		// WebUI's links do; with auth off the page signs itself in. Then, as
		// a user would: close the "What's New" notes that open over a first
		// visit (their "Okay, Let's Go!" button), and press Enter in the
		// prompt while it is still there — the page decides when each
		// shows, so this looks again each second until the answer is in.
		step(t, d, ctx, chromedp.Navigate(ui+"/?models=qwen3&q=Hallo%2C%20gantry"))
		step(t, d, ctx, chromedp.WaitVisible(`#chat-input`))
		for deadline := time.Now().Add(75 * time.Second); ; {
			if step(t, d, ctx, chromedp.Evaluate[bool](`document.body.innerText.includes("Hallo from the simulated engine")`)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no answer in Open WebUI's page; it shows:\n%s",
					step(t, d, ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 1500)`)))
			}
			step(t, d, ctx, chromedp.Evaluate[bool](`(() => {
				const b = [...document.querySelectorAll("button")].find((b) => b.textContent.includes("Okay, Let's Go"));
				if (b) b.click();
				return !!b;
			})()`))
			if step(t, d, ctx, chromedp.Evaluate[bool](`(document.querySelector("#chat-input")?.innerText || "").includes("Hallo, gantry")`)) {
				step(t, d, ctx, chromedp.Click(`#chat-input`))
				step(t, d, ctx, chromedp.KeyEvent(kb.Enter))
			}
			step(t, d, ctx, chromedp.Sleep(time.Second))
		}
		step(t, d, ctx, chromedp.Sleep(5*time.Second)) // the page settles: the sign-in notice fades, for the picture
		png := step(t, d, ctx, chromedp.FullScreenshot(100))
		if !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatal("the screenshot is not a PNG")
		}
		out := filepath.Join(t.TempDir(), "openwebui.png")
		if dir := os.Getenv("GANTRY_SCREENSHOT_DIR"); dir != "" {
			out = filepath.Join(dir, "openwebui.png")
		}
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", out, len(png))
	})
}

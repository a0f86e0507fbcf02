package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// keyed sends a request with a key and returns the status, headers and body.
func keyed(t *testing.T, method, url, key, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestKeysOnEveryRoute: a named key with models [scout, "qwen*"] on the real
// binary: it sees its models, their aliases and presets on /v1/models and
// Ollama's /api/tags, is served on every route (OpenAI, Anthropic,
// Responses, Ollama's API, the seed's own addresses), and asking for any
// other model anywhere is answered as a model that does not exist. Its
// usage shows by its name — gantry activity --by key, /api/usage,
// /metrics — and its key never appears in any output.
func TestKeysOnEveryRoute(t *testing.T) {
	var scoutDoor, r1Door, olisten string
	d := startDaemonWith(t, func(string) string {
		scoutDoor = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		r1Door = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		olisten = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		return `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
ollama_api: {listen: "` + olisten + `"}
auth:
  keys:
    alice: {key: sk-alice-e2e-secret, models: [scout, "qwen*"]}
    ops: {key: sk-ops-e2e-secret, admin: true}
presets:
  qwen-fast: {model: qwen3, set: {temperature: 0}}
  r1-fast: {model: r1}
models:
  scout: {engine: sim, memory: 1GiB, listen: "` + scoutDoor + `", args: [--tokens, "4"]}
  qwen3: {engine: sim, memory: 1GiB, aliases: [q3], args: [--tokens, "4"]}
  r1: {engine: sim, memory: 1GiB, aliases: [deepseek], listen: "` + r1Door + `", args: [--tokens, "4"]}
`
	})
	const alice, ops = "sk-alice-e2e-secret", "sk-ops-e2e-secret"
	var list struct{ Data []struct{ ID string } }
	_, _, body := keyed(t, "GET", d.url+"/v1/models", alice, "")
	json.Unmarshal([]byte(body), &list)
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "qwen3,q3,scout,qwen-fast" {
		t.Errorf("alice's /v1/models: %s", got)
	}
	if _, _, tags := keyed(t, "GET", "http://"+olisten+"/api/tags", alice, ""); strings.Contains(tags, "r1") || !strings.Contains(tags, `"scout"`) {
		t.Errorf("alice's /api/tags: %s", tags)
	}
	type route struct{ base, path, body string }
	routes := []route{
		{d.url, "/v1/chat/completions", `{"model":"M","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`},
		{d.url, "/v1/completions", `{"model":"M","prompt":"hi","max_tokens":4}`},
		{d.url, "/v1/messages", `{"model":"M","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`},
		{d.url, "/v1/responses", `{"model":"M","input":"hi"}`},
		{"http://" + olisten, "/api/chat", `{"model":"M","messages":[{"role":"user","content":"hi"}],"stream":false}`},
		{"http://" + olisten, "/api/generate", `{"model":"M","prompt":"hi","stream":false}`},
	}
	for _, rt := range routes {
		for _, name := range []string{"scout", "q3", "qwen-fast"} {
			if code, _, b := keyed(t, "POST", rt.base+rt.path, alice, strings.Replace(rt.body, `"M"`, `"`+name+`"`, 1)); code != 200 {
				t.Errorf("alice: %s for %s: %d %s", rt.path, name, code, b)
			}
		}
		answer := func(name string) (int, string) {
			code, _, b := keyed(t, "POST", rt.base+rt.path, alice, strings.Replace(rt.body, `"M"`, `"`+name+`"`, 1))
			return code, strings.ReplaceAll(b, name, "NAME")
		}
		nc, nb := answer("nope")
		for _, hidden := range []string{"r1", "deepseek", "r1-fast"} {
			if hc, hb := answer(hidden); hc != 404 || hc != nc || hb != nb || strings.Contains(hb, "r1") {
				t.Errorf("alice: %s for %s: %d %s\n  for a model that does not exist: %d %s", rt.path, hidden, hc, hb, nc, nb)
			}
		}
		if code, _, b := keyed(t, "POST", rt.base+rt.path, ops, strings.Replace(rt.body, `"M"`, `"deepseek"`, 1)); code != 200 {
			t.Errorf("ops: %s for deepseek: %d %s", rt.path, code, b)
		}
	}
	// The seed's own addresses: scout's serves alice, r1's does not.
	chat := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}`
	if code, _, b := keyed(t, "POST", "http://"+scoutDoor+"/v1/chat/completions", alice, chat); code != 200 {
		t.Errorf("scout's own address: %d %s", code, b)
	}
	if code, _, b := keyed(t, "POST", "http://"+r1Door+"/v1/chat/completions", alice, chat); code != 404 || strings.Contains(b, "deepseek") {
		t.Errorf("r1's own address for alice: %d %s", code, b)
	}
	if code, _, _ := keyed(t, "GET", d.url+"/api/status", alice, ""); code != 403 {
		t.Errorf("alice on the admin API: %d", code)
	}

	// Usage by the key's name, everywhere: 19 answers and 25 refusals.
	type row struct {
		Key              string
		Requests         int
		Errors           int
		PromptTokens     int     `json:"prompt_tokens"`
		CompletionTokens int     `json:"completion_tokens"`
		EngineSeconds    float64 `json:"engine_seconds"`
	}
	var aliceRow row
	var usage string
	for deadline := time.Now().Add(10 * time.Second); aliceRow.Requests < 44 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, _, usage = keyed(t, "GET", d.url+"/api/usage?by=key&since=7d", ops, "")
		var u struct {
			By    string
			Usage []row
		}
		if err := json.Unmarshal([]byte(usage), &u); err != nil || u.By != "key" {
			t.Fatalf("/api/usage: %v %s", err, usage)
		}
		for _, r := range u.Usage {
			if r.Key == "alice" {
				aliceRow = r
			}
		}
	}
	if aliceRow.Requests != 44 || aliceRow.Errors != 25 || aliceRow.CompletionTokens == 0 || aliceRow.EngineSeconds <= 0 {
		t.Errorf("alice's usage: %+v (want 44 requests, 25 refused)", aliceRow)
	}
	out, code := run(t, d.home, "activity", "--by", "key", "--since", "7d", "--server", d.url, "--token", ops)
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "ENGINE-SECONDS") {
		t.Errorf("gantry activity --by key: exit %d\n%s", code, out)
	}
	_, _, metrics := keyed(t, "GET", d.url+"/metrics", ops, "")
	if !strings.Contains(metrics, `gantry_key_requests_total{code="200",key="alice"}`) || !strings.Contains(metrics, `gantry_key_completion_tokens_total{key="alice"}`) {
		t.Errorf("no per-key counters in /metrics")
	}
	// The keys themselves appear nowhere: not in gantry's output, the
	// activity log, the status, the metrics.
	st := d.statusJSON()
	var files []string
	filepath.Walk(d.home, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasSuffix(p, "gantry.yaml") && fi.Size() < 16<<20 {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "e2e-secret") {
			t.Errorf("%s holds a key", f)
		}
	}
	for what, text := range map[string]string{"gantry's output": d.out.String(), "status": st, "metrics": metrics, "usage": usage, "activity": out} {
		if strings.Contains(text, "e2e-secret") {
			t.Errorf("%s shows a key", what)
		}
	}
}

// TestOpenAISDKWaitsOutRateLimit: the official OpenAI Python SDK with its
// default retries against a key of 5 requests per minute: 8 requests in a
// row all succeed, the 3 over the limit after waiting out Retry-After (12 s
// each: one request's share of the minute).
func TestOpenAISDKWaitsOutRateLimit(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
auth:
  keys:
    agent: {key: sk-agent-e2e, rpm: 5}
    ops: {key: sk-ops-e2e, admin: true}   # for the test's own gantry ps
models:
  chat: {engine: sim, memory: 1GiB, mode: always-on, args: [--tokens, "4"]}
`)
	d.waitState("chat", "ready", 20*time.Second)
	out, err := clientCmd(t, "ratelimit_client.py", "GANTRY_URL="+d.url, "KEY=sk-agent-e2e", "MODEL=chat", "N=8", "RPM=5").CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
		t.Errorf("ratelimit_client.py: %v", err)
	}
}

// TestOpenWebUIWithTwoModelKey: a real Open WebUI connected with a key
// whose models are two of gantry's three lists exactly those two, and
// chats with them; the third is not there for it.
func TestOpenWebUIWithTwoModelKey(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
auth:
  keys:
    household: {key: sk-household-e2e, models: [qwen3, scout]}
    ops: {key: sk-ops-e2e, admin: true}   # for the test's own gantry ps
models:
  qwen3: {engine: sim, memory: 8GiB, mode: always-on, args: [--itl, 5ms, --tokens, "8"]}
  scout: {engine: sim, memory: 8GiB, args: [--load-time, 300ms, --itl, 5ms, --tokens, "8"]}
  r1: {engine: sim, memory: 8GiB, args: [--itl, 5ms]}
`)
	d.waitState("qwen3", "ready", 20*time.Second)
	ui := startOpenWebUI(t, d.url, "sk-household-e2e")
	var auth struct{ Token string }
	owui(t, "POST", ui+"/api/v1/auths/signin", "", `{"email":"","password":""}`, &auth)
	var models struct {
		Data []struct{ ID string }
	}
	owui(t, "GET", ui+"/api/models", auth.Token, "", &models)
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "qwen3,scout" && strings.Join(ids, ",") != "scout,qwen3" {
		t.Errorf("Open WebUI with the household key lists %v, want exactly qwen3 and scout", ids)
	}
	var answer struct {
		Choices []struct{ Message struct{ Content string } }
	}
	owui(t, "POST", ui+"/api/chat/completions", auth.Token,
		`{"model":"scout","stream":false,"messages":[{"role":"user","content":"Hallo"}]}`, &answer)
	if len(answer.Choices) != 1 || answer.Choices[0].Message.Content == "" {
		t.Errorf("a chat through Open WebUI: %+v", answer)
	}
	if st := d.status().Model("r1"); st.State != "stopped" {
		t.Errorf("r1 is %s: something reached it", st.State)
	}
}

package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gantryhq/gantry/internal/auth"
)

const keyedConfig = `auth:
  keys:
    alice: {key: sk-alice-secret, models: [scout, "qwen*"]}
    ops: {key: sk-ops-secret, admin: true}
    slow: {key: sk-slow-secret, rpm: 2, tpm: 1000}
    one: {key: sk-one-secret, concurrency: 1}
presets:
  qwen-fast: {model: qwen3, set: {temperature: 0}}
  r1-fast: {model: r1}
models:
  scout: {engine: sim, memory: 1GiB, port: ENGINE_scout}
  qwen3: {engine: sim, memory: 1GiB, port: ENGINE_qwen3, aliases: [q3]}
  r1: {engine: sim, memory: 1GiB, port: ENGINE_r1, aliases: [deepseek]}
`

// keyedGateway serves keyedConfig behind its keys: the gateway's routes on
// one server, Ollama's API on another.
func keyedGateway(t *testing.T, engines map[string]http.Handler) (gw, ollama string) {
	t.Helper()
	g, c := newTestGateway(t, keyedConfig, engines, nil)
	keys := auth.FromConfig(c.Auth)
	mux := http.NewServeMux()
	g.Register(mux, Wraps{Gateway: keys.Gateway, GatewayAnthropic: keys.GatewayShaped(AnthropicShape), Admin: keys.Admin})
	omux := http.NewServeMux()
	g.RegisterOllama(omux, Wraps{Gateway: keys.GatewayShaped(OllamaShape), Admin: keys.Admin})
	a, b := httptest.NewServer(mux), httptest.NewServer(omux)
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	return a.URL, b.URL
}

func do(t *testing.T, method, url, key, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func engines() map[string]http.Handler {
	var hits sync.Map
	return map[string]http.Handler{"scout": chatEngine(&hits), "qwen3": chatEngine(&hits), "r1": chatEngine(&hits)}
}

// TestRestrictedKeySeesItsModels: a key with models [scout, "qwen*"] sees
// those, their aliases and presets — on /v1/models, Ollama's /api/tags —
// and nothing else; asking for another model on any route is answered as
// for a model that does not exist, in that route's shape, naming only its
// models.
func TestRestrictedKeySeesItsModels(t *testing.T) {
	gw, ollama := keyedGateway(t, engines())
	ids := func(key string) string {
		_, _, body := do(t, "GET", gw+"/v1/models", key, "")
		var l struct{ Data []struct{ ID string } }
		json.Unmarshal([]byte(body), &l)
		var out []string
		for _, m := range l.Data {
			out = append(out, m.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids("sk-alice-secret"); got != "qwen3,q3,scout,qwen-fast" {
		t.Errorf("alice's /v1/models: %s", got)
	}
	if got := ids("sk-ops-secret"); got != "qwen3,q3,r1,deepseek,scout,qwen-fast,r1-fast" {
		t.Errorf("ops' /v1/models: %s", got)
	}
	_, _, tags := do(t, "GET", ollama+"/api/tags", "sk-alice-secret", "")
	if strings.Contains(tags, "r1") || strings.Contains(tags, "deepseek") || !strings.Contains(tags, `"q3"`) {
		t.Errorf("alice's /api/tags: %s", tags)
	}
	chat := `{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`
	for _, name := range []string{"scout", "q3", "qwen-fast"} {
		if code, _, body := do(t, "POST", gw+"/v1/chat/completions", "sk-alice-secret", strings.Replace(chat, "%q", `"`+name+`"`, 1)); code != 200 {
			t.Errorf("alice asking for %s: %d %s", name, code, body)
		}
	}
	// Every route: r1 (hidden) is answered exactly as nope (nowhere).
	routes := []struct{ base, path, body string }{
		{gw, "/v1/chat/completions", chat},
		{gw, "/v1/completions", `{"model":%q,"prompt":"hi"}`},
		{gw, "/v1/embeddings", `{"model":%q,"input":"hi"}`},
		{gw, "/v1/messages", `{"model":%q,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`},
		{gw, "/v1/messages/count_tokens", `{"model":%q,"messages":[{"role":"user","content":"hi"}]}`},
		{gw, "/v1/responses", `{"model":%q,"input":"hi"}`},
		{ollama, "/api/chat", `{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":false}`},
		{ollama, "/api/generate", `{"model":%q,"prompt":"hi","stream":false}`},
		{ollama, "/api/embed", `{"model":%q,"input":"hi"}`},
		{ollama, "/api/show", `{"model":%q}`},
		{ollama, "/v1/chat/completions", chat},
	}
	for _, rt := range routes {
		answer := func(name string) (int, string) {
			code, _, body := do(t, "POST", rt.base+rt.path, "sk-alice-secret", strings.Replace(rt.body, "%q", `"`+name+`"`, 1))
			return code, strings.ReplaceAll(body, name, "NAME")
		}
		for _, hidden := range []string{"r1", "deepseek", "r1-fast"} {
			hc, hb := answer(hidden)
			nc, nb := answer("nope")
			if hc != 404 || hc != nc || hb != nb {
				t.Errorf("%s for %s: %d %s\n  for a model that does not exist: %d %s", rt.path, hidden, hc, hb, nc, nb)
			}
			if strings.Contains(hb, "r1") || strings.Contains(hb, "deepseek") {
				t.Errorf("%s: the answer names a hidden model: %s", rt.path, hb)
			}
		}
	}
	code, _, body := do(t, "GET", gw+"/v1/models/r1", "sk-alice-secret", "")
	if code != 404 || strings.Contains(body, "deepseek") {
		t.Errorf("/v1/models/r1 for alice: %d %s", code, body)
	}
	if code, _, _ := do(t, "GET", gw+"/v1/models/r1", "sk-ops-secret", ""); code != 200 {
		t.Errorf("/v1/models/r1 for ops: %d", code)
	}
	if code, _, _ := do(t, "POST", gw+"/upstream/r1/v1/models", "sk-alice-secret", ""); code != 403 {
		t.Errorf("alice on /upstream: %d, want 403", code)
	}
}

// TestRateLimitedKey: a key of 2 rpm gets 429 on its third request, in
// OpenAI's shape with the headers the SDKs read, and on Anthropic's route
// in Anthropic's shape and headers; the key is named, never shown.
func TestRateLimitedKey(t *testing.T) {
	gw, _ := keyedGateway(t, engines())
	chat := `{"model":"scout","messages":[{"role":"user","content":"hi"}]}`
	for i := 0; i < 2; i++ {
		code, h, body := do(t, "POST", gw+"/v1/chat/completions", "sk-slow-secret", chat)
		if code != 200 {
			t.Fatalf("request %d: %d %s", i+1, code, body)
		}
		// The first leaves half the minute's requests: no headers; the
		// second leaves none (under a tenth): the headers say so.
		if i == 0 && h.Get("X-Ratelimit-Limit-Requests") != "" {
			t.Errorf("request 1 has the headers with half the bucket left: %v", h)
		}
		if i == 1 && (h.Get("X-Ratelimit-Limit-Requests") != "2" || h.Get("X-Ratelimit-Remaining-Requests") != "0" ||
			h.Get("X-Ratelimit-Limit-Tokens") != "1000" || h.Get("X-Ratelimit-Reset-Requests") == "") {
			t.Errorf("request 2's headers: %v", h)
		}
	}
	code, h, body := do(t, "POST", gw+"/v1/chat/completions", "sk-slow-secret", chat)
	var e struct {
		Error struct {
			Message, Type string
			Param         *string
			Code          string
		}
	}
	json.Unmarshal([]byte(body), &e)
	if code != 429 || e.Error.Type != "requests" || e.Error.Code != "rate_limit_exceeded" ||
		!strings.Contains(e.Error.Message, "Rate limit reached for key slow on requests per min (RPM): Limit 2, Used 2") {
		t.Errorf("third request: %d %s", code, body)
	}
	if ra := h.Get("Retry-After"); ra != "30" || h.Get("Retry-After-Ms") == "" || h.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("third request's headers: %v", h)
	}
	code, h, body = do(t, "POST", gw+"/v1/messages", "sk-slow-secret", `{"model":"scout","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	if code != 429 || !strings.Contains(body, `"type":"rate_limit_error"`) || !strings.Contains(body, `"type":"error"`) {
		t.Errorf("Anthropic route: %d %s", code, body)
	}
	if h.Get("Anthropic-Ratelimit-Requests-Limit") != "2" || h.Get("Anthropic-Ratelimit-Requests-Remaining") != "0" ||
		h.Get("Anthropic-Ratelimit-Requests-Reset") == "" || h.Get("Retry-After") == "" || h.Get("X-Ratelimit-Limit-Requests") != "" {
		t.Errorf("Anthropic route's headers: %v", h)
	}
	if strings.Contains(body, "sk-slow") {
		t.Errorf("the answer shows the key: %s", body)
	}
}

// TestConcurrencyLimitedKey: a key of concurrency 1 has its second request
// refused while the first is in flight, and admitted once it ended.
func TestConcurrencyLimitedKey(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[]}`)
	})
	e := engines()
	e["scout"] = slow
	gw, _ := keyedGateway(t, e)
	chat := `{"model":"scout","messages":[]}`
	first := make(chan int)
	go func() { c, _, _ := do(t, "POST", gw+"/v1/chat/completions", "sk-one-secret", chat); first <- c }()
	<-started
	code, h, body := do(t, "POST", gw+"/v1/chat/completions", "sk-one-secret", chat)
	if code != 429 || h.Get("Retry-After") != "1" || !strings.Contains(body, "requests at once: Limit 1, in flight 1") {
		t.Errorf("second at once: %d %v %s", code, h, body)
	}
	close(release)
	if c := <-first; c != 200 {
		t.Errorf("first: %d", c)
	}
	if code, _, body := do(t, "POST", gw+"/v1/chat/completions", "sk-one-secret", chat); code != 200 {
		t.Errorf("after the first ended: %d %s", code, body)
	}
}

package translate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestOllamaChat(t *testing.T) {
	// As ollama-python's chat(model, messages, tools, options) sends it.
	req, err := ParseOllama([]byte(`{"model":"tiny","messages":[{"role":"system","content":"Be brief."},
	  {"role":"user","content":"Describe","images":["iVBORw0KGgo="]},
	  {"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"x":1}}}]},
	  {"role":"tool","content":"42","tool_name":"f"}],
	  "options":{"temperature":0.2,"num_predict":64,"top_k":40,"repeat_penalty":1.1,"num_ctx":8192,"stop":["\n"]},
	  "format":"json","keep_alive":"5m","stream":false}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if req.Streams() || req.Path() != "/v1/chat/completions" || req.Empty() {
		t.Errorf("streams %v path %s empty %v", req.Streams(), req.Path(), req.Empty())
	}
	if d, set, _ := req.KeepAliveFor(); !set || d != 5*time.Minute {
		t.Errorf("keep_alive %s %v", d, set)
	}
	out, err := req.ToOpenAI("tiny:latest")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	got := string(b)
	for _, want := range []string{`"model":"tiny:latest"`, `"max_tokens":64`, `"temperature":0.2`, `"top_k":40`, `"repetition_penalty":1.1`,
		`"stop":["\n"]`, `"response_format":{"type":"json_object"}`, `"image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}`,
		`"tool_calls":[{"id":"call_0","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]`,
		`{"role":"tool","content":"42","tool_call_id":"f"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	if strings.Contains(got, "8192") {
		t.Errorf("num_ctx passed on: %s", got)
	}
	ans, err := req.FromOpenAI([]byte(`{"choices":[{"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`), "tiny", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(ans); !strings.Contains(s, `"message":{"role":"assistant","content":"Hi"}`) || !strings.Contains(s, `"done":true`) || !strings.Contains(s, `"eval_count":1`) {
		t.Errorf("%s", ans)
	}
}

func TestOllamaGenerateStream(t *testing.T) {
	req, err := ParseOllama([]byte(`{"model":"tiny","prompt":"Why is the sky blue?","system":"Short."}`), true)
	if err != nil || !req.Streams() {
		t.Fatal(err)
	}
	s := req.NewStream("tiny")
	var out []byte
	for _, c := range chatChunks {
		b, _ := s.Chunk([]byte(c))
		out = append(out, b...)
	}
	out = append(out, s.End()...)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"response":"Hal"`) || !strings.Contains(lines[2], `"done":true`) ||
		!strings.Contains(lines[2], `"prompt_eval_count":20`) {
		t.Errorf("%s", out)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("not JSON: %s", l)
		}
	}
	raw, _ := ParseOllama([]byte(`{"model":"tiny","prompt":"x","raw":true}`), true)
	body, _ := raw.ToOpenAI("tiny")
	b, _ := json.Marshal(body)
	if raw.Path() != "/v1/completions" || !strings.Contains(string(b), `"prompt":"x"`) || strings.Contains(string(b), "messages") {
		t.Errorf("raw generate: %s %s", raw.Path(), b)
	}
	empty, _ := ParseOllama([]byte(`{"model":"tiny","keep_alive":0}`), true)
	if d, set, _ := empty.KeepAliveFor(); !empty.Empty() || !set || d != 0 {
		t.Errorf("an unload request: empty %v keep_alive %s %v", empty.Empty(), d, set)
	}
	if _, err := ParseOllama([]byte(`{"model":"tiny","keep_alive":"soon"}`), true); err == nil || !IsBadRequest(err) {
		t.Errorf("bad keep_alive: %v", err)
	}
}

func TestOllamaEmbed(t *testing.T) {
	req, _ := ParseOllamaEmbed([]byte(`{"model":"e","input":["a","b"]}`))
	body, _ := req.ToOpenAI("e")
	b, _ := json.Marshal(body)
	if string(b) != `{"input":["a","b"],"model":"e"}` {
		t.Errorf("%s", b)
	}
	engine := []byte(`{"data":[{"embedding":[0.1,0.2]},{"embedding":[0.3,0.4]}],"usage":{"prompt_tokens":2}}`)
	out, _ := req.FromOpenAI(engine, "e", time.Millisecond, false)
	if !strings.Contains(string(out), `"embeddings":[[0.1,0.2],[0.3,0.4]]`) {
		t.Errorf("%s", out)
	}
	legacy, _ := ParseOllamaEmbed([]byte(`{"model":"e","prompt":"a"}`))
	out, _ = legacy.FromOpenAI(engine, "e", 0, true)
	if string(out) != `{"embedding":[0.1,0.2]}` {
		t.Errorf("%s", out)
	}
}

package translate

import (
	"encoding/json"
	"strings"
	"testing"
)

// A tool-use conversation as Anthropic's documentation shows it and Claude
// Code sends it: a system prompt in blocks, a user turn, the assistant's
// tool_use, the user's tool_result, an image.
const messagesToolTurn = `{
  "model": "claude-sonnet-4-5",
  "max_tokens": 1024,
  "system": [{"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}}],
  "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
             "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
  "tool_choice": {"type": "auto"},
  "stop_sequences": ["\n\nHuman:"],
  "messages": [
    {"role": "user", "content": "What's the weather like in San Francisco?"},
    {"role": "assistant", "content": [
      {"type": "thinking", "thinking": "I should call the tool.", "signature": "x"},
      {"type": "text", "text": "I'll check."},
      {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA"}}]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": [{"type": "text", "text": "15 degrees"}]},
      {"type": "text", "text": "And this picture?"},
      {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}
  ]
}`

func TestMessagesToChat(t *testing.T) {
	req, err := ParseMessages([]byte(messagesToolTurn))
	if err != nil {
		t.Fatal(err)
	}
	c, err := req.ToChat("qwen3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	got := string(b)
	for _, want := range []string{
		`"model":"qwen3"`, `"max_tokens":1024`,
		`{"role":"system","content":"You are a weather bot."}`,
		`{"role":"user","content":"What's the weather like in San Francisco?"}`,
		`{"role":"assistant","content":"I'll check.","tool_calls":[{"id":"toolu_01A09q90qw90lq917835lq9","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"San Francisco, CA\"}"}}]}`,
		`{"role":"tool","content":"15 degrees","tool_call_id":"toolu_01A09q90qw90lq917835lq9"}`,
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}`,
		`"stop":["\n\nHuman:"]`, `"tool_choice":"auto"`,
		`"tools":[{"type":"function","function":{"name":"get_weather"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	if strings.Contains(got, "thinking") {
		t.Errorf("thinking was passed on: %s", got)
	}
	// The tool result answers the call: it comes before the user's text.
	if strings.Index(got, `"role":"tool"`) > strings.Index(got, "And this picture?") {
		t.Errorf("tool result after the user's text: %s", got)
	}
}

func TestMessagesBadInput(t *testing.T) {
	for body, want := range map[string]string{
		`{"model":"m","messages":[{"role":"user","content":"x"}]}`:                                                                             "max_tokens",
		`{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`:                                                                          "model",
		`{"model":"m","max_tokens":5,"messages":[]}`:                                                                                           "at least one",
		`{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`:                                                            "goes in system",
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"video"}]}]}`:                                               "video",
		`{"model":"m","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}`: "server tool",
		`{"model":"m","max_tokens":"five"}`:                                                                                                    "not a valid Messages request",
		`[1,2]`:                                                                                                                                "not a valid",
	} {
		req, err := ParseMessages([]byte(body))
		if err == nil {
			_, err = req.ToChat("m")
		}
		if err == nil || !IsBadRequest(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a bad request saying %q", body, err, want)
		}
	}
}

func TestMessagesFromChat(t *testing.T) {
	req, _ := ParseMessages([]byte(`{"model":"default","max_tokens":50,"stop_sequences":["END"],"messages":[{"role":"user","content":"hi"}]}`))
	// An answer as vLLM gives it: stop_reason names the stop string.
	engine := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"qwen3","choices":[{"index":0,
	  "message":{"role":"assistant","content":"Hallo","tool_calls":[{"id":"chatcmpl-tool-9","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
	  "finish_reason":"stop","stop_reason":"END"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":8}}}`
	b, err := req.FromChat([]byte(engine), "default")
	if err != nil {
		t.Fatal(err)
	}
	var m MessagesResponse
	json.Unmarshal(b, &m)
	if m.Type != "message" || m.Role != "assistant" || m.Model != "default" || !strings.HasPrefix(m.ID, "msg_") ||
		len(m.Content) != 2 || m.Content[0].Text != "Hallo" || m.Content[1].Type != "tool_use" || string(m.Content[1].Input) != `{"a":1}` ||
		m.StopReason != "stop_sequence" || m.StopSequence == nil || *m.StopSequence != "END" ||
		m.Usage.InputTokens != 12 || m.Usage.OutputTokens != 3 || m.Usage.CacheReadInputTokens != 8 {
		t.Errorf("%s", b)
	}
	for finish, want := range map[string]string{"length": "max_tokens", "tool_calls": "tool_use", "stop": "end_turn"} {
		if got, _ := stopReason(finish, nil, nil); got != want {
			t.Errorf("%s → %s, want %s", finish, got, want)
		}
	}
}

// events parses server-sent events into (name, data) pairs.
func events(t *testing.T, b []byte) [][2]string {
	t.Helper()
	var out [][2]string
	for _, ev := range strings.Split(strings.TrimSpace(string(b)), "\n\n") {
		var name, data string
		for _, l := range strings.Split(ev, "\n") {
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(l, "data: "); ok {
				data = v
				if !json.Valid([]byte(v)) {
					t.Fatalf("event %s: invalid JSON %s", name, v)
				}
			}
		}
		if name != "" {
			out = append(out, [2]string{name, data})
		}
	}
	return out
}

// chunks as vLLM streams them: the role first, text, a tool call in
// fragments, the finish, and the usage chunk with empty choices.
var chatChunks = []string{
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"q","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"q","choices":[{"index":0,"delta":{"content":"Hal"},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"q","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"q","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"q","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\": "}}]},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"q","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"q","choices":[{"index":0,"delta":{"content":null},"finish_reason":"tool_calls"}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"q","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}`,
}

func TestAnthropicStream(t *testing.T) {
	req, _ := ParseMessages([]byte(`{"model":"default","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	s := req.NewStream("default")
	var out []byte
	for _, c := range chatChunks {
		b, err := s.Chunk([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	out = append(out, s.End()...)
	evs := events(t, out)
	var names []string
	for _, e := range evs {
		names = append(names, e[0])
	}
	want := "message_start ping content_block_start content_block_delta content_block_delta content_block_stop " +
		"content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if strings.Join(names, " ") != want {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(names, " "), want)
	}
	all := string(out)
	for _, w := range []string{`{"text":"Hal","type":"text_delta"}`, `{"id":"call_1","input":{},"name":"get_weather","type":"tool_use"}`,
		`"partial_json":"{\"location\": "`, `"index":1`, `"stop_reason":"tool_use"`, `"output_tokens":9`, `"input_tokens":20`} {
		if !strings.Contains(all, w) {
			t.Errorf("missing %s", w)
		}
	}
	if p, c, _ := s.Usage(); p != 20 || c != 9 {
		t.Errorf("usage %d %d", p, c)
	}
	if fail := events(t, req.NewStream("x").Fail("engine died")); len(fail) != 1 || fail[0][0] != "error" || !strings.Contains(fail[0][1], "engine died") {
		t.Errorf("fail: %v", fail)
	}
}

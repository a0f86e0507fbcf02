package translate

import (
	"encoding/json"
	"strings"
	"testing"
)

// A Responses request as Codex sends one: instructions, a developer
// message, a user message with text and an image, a previous function call
// with its output, function tools.
const responsesTurn = `{
  "model": "gpt-5-codex",
  "instructions": "You are a coding agent.",
  "input": [
    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Use the shell tool."}]},
    {"role": "user", "content": [{"type": "input_text", "text": "List the files."}, {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
    {"type": "reasoning", "summary": []},
    {"type": "function_call", "call_id": "call_7", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
    {"type": "function_call_output", "call_id": "call_7", "output": "README.md\ngo.mod"}
  ],
  "tools": [{"type": "function", "name": "shell", "description": "Run a command", "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}, "strict": false}],
  "tool_choice": "auto",
  "parallel_tool_calls": false,
  "store": false,
  "stream": true,
  "max_output_tokens": 512,
  "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}}
}`

func TestResponsesToChat(t *testing.T) {
	req, err := ParseResponses([]byte(responsesTurn))
	if err != nil {
		t.Fatal(err)
	}
	c, err := req.ToChat("qwen3-coder")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	got := string(b)
	for _, want := range []string{
		`{"role":"system","content":"You are a coding agent."}`,
		`{"role":"system","content":"Use the shell tool."}`,
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}`,
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_7","type":"function","function":{"name":"shell","arguments":"{\"command\":[\"ls\"]}"}}]}`,
		`{"role":"tool","content":"README.md\ngo.mod","tool_call_id":"call_7"}`,
		`"max_tokens":512`, `"stream":true`, `"stream_options":{"include_usage":true}`, `"parallel_tool_calls":false`,
		`"response_format":{"json_schema":{"name":"out","schema":{"type":"object"},"strict":null},"type":"json_schema"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	for body, want := range map[string]string{
		`{"model":"m","input":"x","previous_response_id":"resp_1"}`: "stateless",
		`{"model":"m","input":"x","tools":[{"type":"web_search"}]}`: "function tools only",
		`{"model":"m"}`: "input: required",
		`{"input":"x"}`: "model: required",
	} {
		if _, err := ParseResponses([]byte(body)); err == nil || !IsBadRequest(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

func TestResponsesFromChat(t *testing.T) {
	req, _ := ParseResponses([]byte(`{"model":"default","input":"hi","max_output_tokens":3}`))
	b, err := req.FromChat([]byte(`{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hal",
	  "tool_calls":[{"id":"call_2","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"length"}],
	  "usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}`), "default")
	if err != nil {
		t.Fatal(err)
	}
	var r Response
	json.Unmarshal(b, &r)
	if r.Object != "response" || r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens" || len(r.Output) != 2 ||
		r.Output[0].Content[0].Text != "Hal" || r.Output[1].Type != "function_call" || r.Output[1].CallID != "call_2" ||
		r.Usage.TotalTokens != 7 || r.OutputText != "Hal" {
		t.Errorf("%s", b)
	}
}

func TestResponsesStream(t *testing.T) {
	req, _ := ParseResponses([]byte(`{"model":"default","input":"hi","stream":true}`))
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
	var names []string
	seq := -1
	for _, e := range events(t, out) {
		names = append(names, e[0])
		var ev struct {
			Type string `json:"type"`
			Seq  int    `json:"sequence_number"`
		}
		json.Unmarshal([]byte(e[1]), &ev)
		if ev.Type != e[0] || ev.Seq != seq+1 {
			t.Errorf("event %s: type %q sequence %d after %d", e[0], ev.Type, ev.Seq, seq)
		}
		seq = ev.Seq
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added " +
		"response.output_text.delta response.output_text.delta response.output_text.done response.content_part.done response.output_item.done " +
		"response.output_item.added response.function_call_arguments.delta response.function_call_arguments.delta " +
		"response.function_call_arguments.done response.output_item.done response.completed"
	if strings.Join(names, " ") != want {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(names, " "), want)
	}
	all := string(out)
	for _, w := range []string{`"delta":"Hal"`, `"arguments":"{\"location\": \"Paris\"}"`, `"output_text":"Hallo"`, `"total_tokens":29`} {
		if !strings.Contains(all, w) {
			t.Errorf("missing %s", w)
		}
	}
}

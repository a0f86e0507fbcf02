package translate

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// strs are strings that take every path of JSON's string escaping.
var strs = func() []string {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return []string{"", " token", "Hallo, wie geht es dir?", `"quoted" \back\slash`, "<b>&amp;</b>", "tab\tnew\nline\r\f\b",
		"\x00\x01\x1f\x7f", "█▌ 100%", "emoji 🚀 and ü", "\u2028\u2029", "\xe2\x96", "cut \xff\xfe end", string(all),
		strings.Repeat("long ", 300)}
}()

func TestAppendStringIsMarshal(t *testing.T) {
	for _, s := range strs {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, json.Marshal %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range strs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, json.Marshal %s", s, got, want)
		}
		if !utf8.Valid(appendString(nil, s)) {
			t.Fatalf("%q: not UTF-8", s)
		}
	})
}

// TestTextDeltasAreMarshal: the hand-written events of a stream's text are
// byte for byte what the marshalled maps were.
func TestTextDeltasAreMarshal(t *testing.T) {
	for _, text := range strs {
		want := sse(nil, "content_block_delta", map[string]any{"type": "content_block_delta", "index": 3,
			"delta": map[string]string{"type": "text_delta", "text": text}})
		if got := anthropicTextDelta(nil, 3, text); !bytes.Equal(got, want) {
			t.Errorf("anthropic %q:\n%s\nwant\n%s", text, got, want)
		}

		a := &ResponsesStream{resp: &Response{Output: []ROutput{{ID: "msg_1"}, {ID: "msg_<2>"}}}, open: 1, seq: 7}
		b := &ResponsesStream{resp: a.resp, open: 1, seq: 7}
		want = b.event(nil, "response.output_text.delta", map[string]any{"item_id": b.resp.Output[b.open].ID, "output_index": b.open, "content_index": 0, "delta": text})
		if got := a.textDelta(nil, text); !bytes.Equal(got, want) || a.seq != b.seq {
			t.Errorf("responses %q:\n%s\nwant\n%s", text, got, want)
		}

		for _, generate := range []bool{false, true} {
			o := &OllamaStream{req: &OllamaRequest{generate: generate}, model: "qwen3:<8b>"}
			want = pieceMarshalled(o, "2026-12-03T07:00:00.123456789Z", text)
			if got := o.ollamaPiece(nil, "2026-12-03T07:00:00.123456789Z", text); !bytes.Equal(got, want) {
				t.Errorf("ollama (generate %v) %q:\n%s\nwant\n%s", generate, text, got, want)
			}
		}
	}
}

// pieceMarshalled is an Ollama stream's piece as json.Marshal wrote it.
func pieceMarshalled(s *OllamaStream, createdAt, text string) []byte {
	obj := map[string]any{"model": s.model, "created_at": createdAt, "done": false}
	if s.req.generate {
		obj["response"] = text
	} else {
		obj["message"] = OllamaMessage{Role: "assistant", Content: text}
	}
	return s.line(nil, obj)
}

var chunkSeeds = []string{
	string(benchChunk),
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"c","choices":[{"index":0,"delta":{"content":"a \"quoted\" \\ word\n\ttab\/"},"finish_reason":"stop","stop_reason":null}],"usage":null}`,
	`{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`,
	`{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":"{}"}}]}}]}`,
	`{"id":"c","choices":[{"index":0,"delta":{"content":"\u00fc\ud83d\ude80 <&>"}}]}`,
	`{"choices":[{"delta":{"content":"x"}}],"choices":[{"index":1}]}`,
	`{"Choices":[{"delta":{"content":"x"}}]}`,
	` {"choices":null} `, `{"choices":[{"index":0,"delta":{"content":null}}]}`, `{"created":-1}`, `{"created":1.5}`,
	`{"choices":[{"index":0,"delta":{"content":"\xff"}}]}`, `{"a":[1,2]}`, `{"a":{"b":1}}`, `{}`, `[]`, `{`, `{"id":"x",}`, `null`,
}

// FuzzChunkDecode: whatever an engine sends, the hand-read chunk is the
// one Unmarshal reads, and an error is an error.
func FuzzChunkDecode(f *testing.F) {
	for _, s := range chunkSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want ChatChunk
		werr := json.Unmarshal(data, &want)
		var fast ChatChunk
		if !fastChunk(data, &fast) {
			return // Unmarshal reads it
		}
		if werr != nil {
			t.Fatalf("%q: the fast path read what Unmarshal refuses (%v): %+v", data, werr, fast)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q:\nfast      %s\nUnmarshal %s", data, show(fast), show(want))
		}
	})
}

func show(c ChatChunk) string { b, _ := json.Marshal(c); return string(b) }

// TestFastChunkTakesTheTokenShape: the chunks of a token stream take the
// fast path (else the benchmark measures Unmarshal).
func TestFastChunkTakesTheTokenShape(t *testing.T) {
	for _, s := range chunkSeeds[:3] {
		var c ChatChunk
		if !fastChunk([]byte(s), &c) {
			t.Errorf("%s: not read by hand", s)
		}
	}
}

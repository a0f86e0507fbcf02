package translate

import (
	"encoding/json"
	"testing"
)

// FuzzRequests: no request body, however malformed, panics a translator;
// each either refuses it as the client's error or yields a chat request
// that encodes.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{messagesToolTurn, responsesTurn, `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","content":null}]}]}`,
		`{"model":"m","input":[{"type":"function_call_output","output":{"a":1}}]}`, `{"model":"m","messages":[{"role":"user","content":"x","images":["a"]}],"format":{"type":"object"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseMessages(b); err == nil {
			if c, err := r.ToChat("m"); err == nil {
				mustEncode(t, c)
			} else if !IsBadRequest(err) {
				t.Fatalf("messages: %v", err)
			}
		} else if !IsBadRequest(err) {
			t.Fatalf("messages: %v", err)
		}
		if r, err := ParseResponses(b); err == nil {
			if c, err := r.ToChat("m"); err == nil {
				mustEncode(t, c)
			} else if !IsBadRequest(err) {
				t.Fatalf("responses: %v", err)
			}
		}
		for _, gen := range []bool{false, true} {
			if r, err := ParseOllama(b, gen); err == nil {
				if c, err := r.ToOpenAI("m"); err == nil {
					mustEncode(t, c)
				} else if !IsBadRequest(err) {
					t.Fatalf("ollama: %v", err)
				}
			}
		}
	})
}

// FuzzStreams: no chunk an engine sends panics a stream translator, and
// what they write is valid events.
func FuzzStreams(f *testing.F) {
	for _, c := range chatChunks {
		f.Add([]byte(c))
	}
	f.Add([]byte(`{"choices":[{"delta":{"tool_calls":[{"index":5,"function":{"arguments":"x"}}]},"finish_reason":"length"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _ := ParseMessages([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`))
		r, _ := ParseResponses([]byte(`{"model":"m","input":"x"}`))
		o, _ := ParseOllama([]byte(`{"model":"m","messages":[]}`), false)
		for _, s := range []Stream{m.NewStream("m"), r.NewStream("m"), o.NewStream("m")} {
			out, _ := s.Chunk(b)
			out = append(out, s.End()...)
			if len(out) == 0 {
				t.Fatal("nothing written at the end")
			}
		}
	})
}

func mustEncode(t *testing.T, v any) {
	t.Helper()
	if _, err := json.Marshal(v); err != nil {
		t.Fatalf("the translation does not encode: %v", err)
	}
}

package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gantryhq/gantry/internal/engine"
)

// TestEngineRenames: a request for an engine that reads a parameter under
// another name (Ollama: max_tokens, not max_completion_tokens) reaches it
// under that name — alone, beside an alias's served name and the usage
// gantry asks for, after a preset, escaped, in a body large enough to be
// spliced — and nothing else of the body changes; a body that sets the
// engine's name itself, a nested key of the same name and every request
// for an engine without renames go through byte for byte.
func TestEngineRenames(t *testing.T) {
	var got atomic.Value
	eng := bodyEngine(&got)
	var log pendings // the activity log on: gantry asks a stream for its usage
	gw := testGatewayWith(t, `engines: {ollama: {port: ENGINE_o}}
models:
  "qwen3:8b": {engine: ollama, model: "qwen3:8b", memory: 1GiB}
  tiny: {engine: ollama, model: "llama3.2:1b", memory: 1GiB}
  sim: {engine: sim, memory: 1GiB, port: ENGINE_s}
presets:
  short: {model: "qwen3:8b", set: {max_completion_tokens: 3}}
`, map[string]http.Handler{"o": eng, "s": eng}, nil, func(g *Gateway) {
		g.SetActivity(&log, func(*http.Request) string { return "key 1" })
	})
	big := strings.Repeat("x", 2<<20) // over spliceMin: sent in pieces around the edits
	for _, tc := range []struct{ name, body, want string }{
		{"renamed", `{"model":"qwen3:8b","max_completion_tokens":8,"messages":[]}`,
			`{"model":"qwen3:8b","max_tokens":8,"messages":[]}`},
		{"with an alias and usage", `{"model":"tiny","stream":true,"messages":[],"max_completion_tokens": 8 }`,
			`{"stream_options":{"include_usage":true},"model":"llama3.2:1b","stream":true,"messages":[],"max_tokens": 8 }`},
		{"escaped", `{"model":"qwen3:8b","max\u005fcompletion_tokens":8}`,
			`{"model":"qwen3:8b","max_tokens":8}`},
		{"spliced", `{"model":"tiny","messages":[{"role":"user","content":"` + big + `"}],"max_completion_tokens":8}`,
			`{"model":"llama3.2:1b","messages":[{"role":"user","content":"` + big + `"}],"max_tokens":8}`},
		{"the engine's own name set too", `{"model":"qwen3:8b","max_tokens":4,"max_completion_tokens":8}`,
			`{"model":"qwen3:8b","max_tokens":4,"max_completion_tokens":8}`},
		{"its name in another case", `{"model":"qwen3:8b","Max_Tokens":4,"max_completion_tokens":8}`,
			`{"model":"qwen3:8b","Max_Tokens":4,"max_completion_tokens":8}`},
		{"nested", `{"model":"qwen3:8b","metadata":{"max_completion_tokens":8}}`,
			`{"model":"qwen3:8b","metadata":{"max_completion_tokens":8}}`},
		{"no renames for the engine", `{"model":"sim","max_completion_tokens":8,"messages":[]}`,
			`{"model":"sim","max_completion_tokens":8,"messages":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got.Store("")
			code, _, b := post(t, gw+"/v1/chat/completions", tc.body)
			if code != 200 {
				t.Fatalf("%d %s", code, b)
			}
			if s := got.Load().(string); s != tc.want {
				t.Errorf("the engine got\n%.300s\nwant\n%.300s", s, tc.want)
			}
		})
	}
	// A preset sets the parameter by OpenAI's name; the engine reads its own.
	if code, _, b := post(t, gw+"/v1/chat/completions", `{"model":"short","messages":[]}`); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got.Load().(string)), &m); err != nil || m["max_tokens"] != 3.0 || m["max_completion_tokens"] != nil {
		t.Errorf("a preset's max_completion_tokens: the engine got %v (%v)", got.Load(), err)
	}
}

// BenchmarkRenameEdits is what an Ollama request pays for its rename: one
// more scan of the body's top level.
func BenchmarkRenameEdits(b *testing.B) {
	body := []byte(`{"model":"qwen3:8b","messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}],"max_completion_tokens":16,"stream":true}`)
	rn := engine.Renamed(engine.Ollama)
	b.ReportAllocs()
	for b.Loop() {
		if len(renameEdits(nil, body, rn)) != 1 {
			b.Fatal("no rename")
		}
	}
}

package translate

import (
	"testing"
)

// A token chunk as vLLM streams it: what every translated stream
// translates once per token.
var benchChunk = []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764400000,"model":"m","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}`)

// BenchmarkStreamChunk translates one token chunk of a stream already
// under way, for each translated API: the per-event cost of translation
// (the pass-through route does none of it).
func BenchmarkStreamChunk(b *testing.B) {
	msgs, err := ParseMessages([]byte(`{"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"x"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	resp, err := ParseResponses([]byte(`{"model":"m","stream":true,"input":"x"}`))
	if err != nil {
		b.Fatal(err)
	}
	oll, err := ParseOllama([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}]}`), false)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		s    Stream
	}{{"messages", msgs.NewStream("m")}, {"responses", resp.NewStream("m")}, {"ollama", oll.NewStream("m")}} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := bc.s.Chunk(benchChunk); err != nil { // the stream's start
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if out, err := bc.s.Chunk(benchChunk); err != nil || len(out) == 0 {
					b.Fatal(err, len(out))
				}
			}
		})
	}
}

package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// translatedRoutes times one client's requests through gantry on the
// routes it translates (Anthropic Messages, OpenAI Responses, Ollama's
// chat) next to the pass-through chat route, in the same run and
// interleaved: what a translation adds to a request.
func translatedRoutes(gw, ollama string, n int) {
	routes := []struct {
		name, url, body string
	}{
		{"pass-through /v1/chat/completions", gw + "/v1/chat/completions", fmt.Sprintf(chatBody, "fast", "")},
		{"translated /v1/messages", gw + "/v1/messages", `{"model":"fast","max_tokens":16,"messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}]}`},
		{"translated /v1/responses", gw + "/v1/responses", `{"model":"fast","max_output_tokens":16,"input":"Hallo, wie geht es dir heute?"}`},
		{"translated Ollama /api/chat", ollama + "/api/chat", `{"model":"fast","stream":false,"options":{"num_predict":16},"messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}]}`},
	}
	times := make([][]time.Duration, len(routes))
	for i := 0; i < n; i++ {
		for k := range routes {
			r := routes[(i+k)%len(routes)]
			t0 := time.Now()
			resp, err := client.Post(r.url, "application/json", strings.NewReader(r.body))
			if err != nil {
				fmt.Println(r.name, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				fmt.Println(r.name, "status", resp.StatusCode)
				return
			}
			times[(i+k)%len(routes)] = append(times[(i+k)%len(routes)], time.Since(t0))
		}
	}
	base := pct(times[0], 50)
	record("1 client, "+routes[0].name+", p50", us(base), "", nil)
	for k := 1; k < len(routes); k++ {
		p := pct(times[k], 50)
		record(fmt.Sprintf("1 client, %s, p50 (added over pass-through)", routes[k].name),
			fmt.Sprintf("%s (%+d µs)", us(p), (p-base).Microseconds()), "", nil)
	}
}

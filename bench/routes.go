package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func init() {
	addSection(section{id: "routes", order: 30, title: "Translated routes: Messages, Responses, Ollama's API",
		about: `The routes gantry translates (Anthropic Messages, OpenAI Responses, Ollama's chat) next to the ` +
			`pass-through chat route, through the same gantry to the same engine, interleaved: one client's requests ` +
			`(p50), and rounds of concurrent streams (64 engine events each, 20 ms apart) for gantry's CPU per engine event.`})
	register(phase{name: "routes", section: "routes", order: 40, run: func(e *env) error {
		n := map[bool]int{true: 250, false: 1500}[*quick]
		if err := translatedRoutes(e, n); err != nil {
			return err
		}
		return translatedStreams(e, 200, rounds(9))
	}})
}

// route is one way into gantry for a chat: its URL, a body for model, and
// what marks a token event in its answer.
type route struct {
	name, path string
	ollama     bool
	body       string // %s: the model; %s: "stream":true or false
	token      []byte // a line of the answer that carries a token
}

var routes = []route{
	{"pass-through /v1/chat/completions", "/v1/chat/completions", false,
		`{"model":"%s","max_tokens":64,"messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}],%s}`, []byte(`"delta":{"content"`)},
	{"translated /v1/messages", "/v1/messages", false,
		`{"model":"%s","max_tokens":64,"messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}],%s}`, []byte(`"text_delta"`)},
	{"translated /v1/responses", "/v1/responses", false,
		`{"model":"%s","max_output_tokens":64,"input":"Hallo, wie geht es dir heute?",%s}`, []byte(`"type":"response.output_text.delta"`)},
	{"translated Ollama /api/chat", "/api/chat", true,
		`{"model":"%s","options":{"num_predict":64},"messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}],%s}`, []byte(`"done":false`)},
}

func (r route) url(e *env) string {
	if r.ollama {
		return e.ollama + r.path
	}
	return e.gw + r.path
}

func (r route) request(e *env, model string, stream bool) (io.ReadCloser, error) {
	resp, err := client.Post(r.url(e), "application/json", strings.NewReader(fmt.Sprintf(r.body, model, fmt.Sprintf(`"stream":%v`, stream))))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %d %s", r.name, resp.StatusCode, b)
	}
	return resp.Body, nil
}

// translatedRoutes times one client's requests on each route, in rotated
// order.
func translatedRoutes(e *env, n int) error {
	times := make([][]time.Duration, len(routes))
	for i := 0; i < n; i++ {
		for k := range routes {
			r := (i + k) % len(routes)
			t0 := time.Now()
			body, err := routes[r].request(e, "fast", false)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, body)
			body.Close()
			times[r] = append(times[r], time.Since(t0))
		}
	}
	base := pct(times[0], 50)
	record("1 client, "+routes[0].name+", p50", us(base), "", nil)
	for k := 1; k < len(routes); k++ {
		p := pct(times[k], 50)
		record(fmt.Sprintf("1 client, %s, p50 (added over pass-through)", routes[k].name),
			fmt.Sprintf("%s (%+d µs)", us(p), (p-base).Microseconds()), "", nil)
	}
	return nil
}

// translatedStreams runs rounds of n concurrent streams on each route and
// records gantry's CPU per engine event on each, against pass-through's.
func translatedStreams(e *env, n, rounds int) error {
	var cpu = make([]time.Duration, len(routes))
	var events = make([]int64, len(routes))
	for _, r := range routes { // warm the pools
		if _, err := routeStreams(e, r, n); err != nil {
			return err
		}
	}
	for i := 0; i < rounds; i++ {
		for k := range routes {
			r := (i + k) % len(routes)
			c0 := cpuTime(e.pid)
			got, err := routeStreams(e, routes[r], n)
			if err != nil {
				return err
			}
			cpu[r] += cpuTime(e.pid) - c0
			events[r] += got
		}
	}
	per := func(k int) float64 { return float64(cpu[k].Microseconds()) / float64(max(events[k], 1)) }
	record(fmt.Sprintf("%d streams, %s: gantry's CPU per engine event", n, routes[0].name), fmt.Sprintf("%.1f µs", per(0)), "", nil)
	for k := 1; k < len(routes); k++ {
		q := per(k) / per(0)
		record(fmt.Sprintf("%d streams, %s: gantry's CPU per engine event (÷ pass-through)", n, routes[k].name),
			fmt.Sprintf("%.1f µs (%.2f×)", per(k), q), "≤ 1.3× pass-through", yes(q <= 1.3))
	}
	return nil
}

// routeStreams opens n streams at once on r and returns the token events
// the clients got; a stream that lost one is an error.
func routeStreams(e *env, r route, n int) (int64, error) {
	var got atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := r.request(e, "stream", true)
			if err == nil {
				k := int64(0)
				sc := bufio.NewScanner(body)
				for sc.Scan() {
					if bytes.Contains(sc.Bytes(), r.token) {
						k++
					}
				}
				body.Close()
				got.Add(k)
				if k != 64 {
					err = fmt.Errorf("%s: a stream carried %d tokens, not 64", r.name, k)
				}
			}
			if err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return got.Load(), first
}

func cmpErr(have, err error) error {
	if have != nil {
		return have
	}
	return err
}

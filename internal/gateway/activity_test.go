package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
)

// pendings collects what the gateway records.
type pendings struct {
	mu sync.Mutex
	ps []activity.Pending
}

func (p *pendings) Add(x activity.Pending) {
	p.mu.Lock()
	p.ps = append(p.ps, x)
	p.mu.Unlock()
}

func (p *pendings) wait(t *testing.T, n int) []activity.Pending {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		if len(p.ps) >= n {
			out := append([]activity.Pending(nil), p.ps...)
			p.mu.Unlock()
			return out
		}
		p.mu.Unlock()
	}
	t.Fatalf("fewer than %d records", n)
	return nil
}

// usageEngine streams like vLLM: with stream_options.include_usage, a
// last chunk with "choices":[] and the usage — written in two pieces with
// a flush between, so the gateway sees it split across reads.
func usageEngine(asked *sync.Map) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		asked.Store(string(b), true)
		if !strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		io.WriteString(w, "data: "+chatChunk("Hal")+"\n\ndata: "+chatChunk("lo")+"\n\n")
		f.Flush()
		if strings.Contains(string(b), `"include_usage":true`) {
			io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","choices":[],"us`)
			f.Flush()
			time.Sleep(10 * time.Millisecond)
			io.WriteString(w, `age":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`+"\n\n")
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
}

func TestActivityRecordsUsage(t *testing.T) {
	var asked sync.Map
	var log pendings
	url := testGatewayWith(t, "models:\n  m: {engine: sim, memory: 1GiB, port: ENGINE_m, aliases: [mm]}\n",
		map[string]http.Handler{"m": usageEngine(&asked)}, nil, func(g *Gateway) {
			g.SetActivity(&log, func(*http.Request) string { return "key 1" })
		})

	// A stream whose client did not ask for usage: gantry asks, records
	// the tokens, and the client never sees the usage chunk.
	code, _, body := post(t, url+"/v1/chat/completions", `{"model":"mm","stream":true,"messages":[]}`)
	if code != 200 || strings.Contains(body, "usage") || strings.Contains(body, `"choices":[]`) || !strings.Contains(body, "[DONE]") {
		t.Fatalf("the client got the usage it did not ask for: %d\n%s", code, body)
	}
	// One that asked gets it.
	_, _, body = post(t, url+"/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`)
	if !strings.Contains(body, `"completion_tokens":2`) {
		t.Fatalf("the client asked for usage and got none:\n%s", body)
	}
	post(t, url+"/v1/chat/completions", `{"model":"m","messages":[]}`)
	post(t, url+"/v1/chat/completions", `{"model":"nope","messages":[]}`)

	ps := log.wait(t, 4)
	var recs []activity.Record
	for _, p := range ps {
		recs = append(recs, p.Finish())
	}
	want := []struct {
		model, served string
		stream        bool
		prompt, compl int
		status        int
		err           string
	}{
		{"mm", "m", true, 5, 2, 200, ""},
		{"m", "m", true, 5, 2, 200, ""},
		{"m", "m", false, 11, 7, 200, ""},
		{"nope", "", false, 0, 0, 404, "model_not_found"},
	}
	for i, w := range want {
		r := recs[i]
		got := [2]int{}
		if r.Tokens != nil {
			got = [2]int{r.Tokens.Prompt, r.Tokens.Completion}
		}
		if r.Model != w.model || r.Served != w.served || r.Stream != w.stream || got != [2]int{w.prompt, w.compl} ||
			r.Status != w.status || r.Error != w.err || r.Key != "key 1" || r.Route != "/v1/chat/completions" {
			t.Errorf("record %d: %+v tokens %v, want %+v", i, r, got, w)
		}
	}
	n := 0
	asked.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), `{"stream_options":{"include_usage":true},`) {
			n++
		}
		return true
	})
	if n != 1 {
		t.Errorf("gantry asked for usage %d times, want once (the client that asked did so itself)", n)
	}
}

// TestUsageChunkInOneReadWithTheStream: the engine's whole stream —
// sixteen chunks, the usage chunk and [DONE] — in one read: the chunks
// written after the usage chunk was kept must not push it out of the
// record (they did, from the 2 KiB tail).
func TestUsageChunkInOneReadWithTheStream(t *testing.T) {
	rec := &request{ResponseWriter: httptest.NewRecorder(), r: httptest.NewRequest("POST", "/v1/chat/completions", nil), began: time.Now()}
	rec.ex.on = true
	rec.ex.stripUsage = true
	var b strings.Builder
	for i := 0; i < 16; i++ {
		b.WriteString("data: " + chatChunk(strings.Repeat("token", 20)) + "\n\n")
	}
	b.WriteString(`data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":16}}` + "\n\ndata: [DO")
	first := b.String()
	second := "NE]\n\n"
	out, held := rec.ex.complete(nil, []byte(first), false)
	rec.Write(out)
	out, held = rec.ex.complete(held, []byte(second), true)
	rec.Write(out)
	if len(held) != 0 || strings.Contains(rec.ResponseWriter.(*httptest.ResponseRecorder).Body.String(), "usage") {
		t.Fatalf("the client got the usage chunk, or something is held: %q", held)
	}
	var log pendings
	g := &Gateway{act: &log}
	g.record(rec, 0, 200)
	p := log.wait(t, 1)[0]
	if r := p.Finish(); r.Tokens == nil || r.Tokens.Completion != 16 {
		t.Errorf("tokens %+v", r.Tokens)
	}
}

func TestAskUsage(t *testing.T) {
	for in, want := range map[string]string{
		`{"model":"m","stream":true}`: `{"stream_options":{"include_usage":true},"model":"m","stream":true}`,
		` { }`:                        ` {"stream_options":{"include_usage":true} }`,
	} {
		if got := string(askUsage([]byte(in))); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

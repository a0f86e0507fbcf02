package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
)

// While a streamed request waits for its model to load, its client is not
// left silent: proxies and clients that cut an idle stream (nginx after
// 60 s, many chat UIs sooner) see server-sent comments, and a model or
// preset with loading_message: true shows a short note in the chat itself.
// The first sign comes after loadingFirst (a ready or fast model answers
// before, with its engine's own headers), then every loadingEvery.
var (
	loadingFirst = 2 * time.Second
	loadingEvery = 10 * time.Second
)

// acquireStreaming is sched.Acquire for a streamed request: while the
// model loads it sends the keep-alives, and note (when not nil) makes the
// visible note. When it has sent anything, q.early is true: the answer's
// headers are out, and an error must go into the stream.
func (g *Gateway) acquireStreaming(q *request, name string, note func(model, load string, waited time.Duration) []byte) (*sched.Lease, error) {
	type result struct {
		lease *sched.Lease
		err   error
	}
	done := make(chan result, 1)
	go func() {
		l, err := g.sched.AcquireAs(q.r.Context(), name, priorityOf(q.r))
		done <- result{l, err}
	}()
	began := time.Now()
	lastPhase := ""
	t := time.NewTimer(loadingFirst)
	defer t.Stop()
	rc := http.NewResponseController(q)
	for {
		select {
		case res := <-done:
			return res.lease, res.err
		case <-t.C:
		}
		waited := time.Since(began).Round(time.Second)
		st, load := g.loadStatus(name)
		if !q.early {
			q.early = true
			q.Header().Set("Content-Type", "text/event-stream")
			q.Header().Set("Cache-Control", "no-cache")
			q.Header().Set("X-Accel-Buffering", "no")
			q.WriteHeader(http.StatusOK)
		}
		// The note goes out first, and again when the load's phase moved
		// on: a chat shows a line per phase, not one per tick.
		if note != nil && st.LoadPhase() != lastPhase {
			lastPhase = st.LoadPhase()
			q.Write(note(st.Name, load, waited)) //nolint:errcheck // a gone client ends the request's context
		}
		fmt.Fprintf(q, ": gantry is loading %s (%s)\n\n", name, load)
		rc.Flush() //nolint:errcheck // a gone client ends the request's context
		t.Reset(loadingEvery)
	}
}

// loadStatus is the status of the model name resolves to and its load's
// progress as words (status.ModelStatus.LoadText).
func (g *Gateway) loadStatus(name string) (status.ModelStatus, string) {
	st := status.ModelStatus{Name: name}
	if m := g.sched.Config().Resolve(name); m != nil {
		st = g.sched.Status().Model(m.Name)
	}
	return st, st.LoadText()
}

// loadingNote is the visible note of a chat answer: one chunk whose text
// says what loads and how far it is.
func loadingNote(model, load string, waited time.Duration) []byte {
	b, _ := json.Marshal(map[string]any{"id": "gantry-loading", "object": "chat.completion.chunk", "created": time.Now().Unix(),
		"model": model, "choices": []any{map[string]any{"index": 0, "finish_reason": nil,
			"delta": map[string]string{"role": "assistant", "content": fmt.Sprintf("(loading %s: %s; waited %s …)\n\n", model, load, waited)}}}})
	return append(append([]byte("data: "), b...), "\n\n"...)
}

// wantsNote reports whether a request for name should get the visible
// note: its model, or the preset it asked for, says loading_message.
func (g *Gateway) wantsNote(name string, p *preset) bool {
	if p != nil && p.p.LoadingMessage {
		return true
	}
	m := g.sched.Config().Resolve(name)
	return m != nil && m.LoadingMessage
}

package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/trim"
)

// TestStreamHeadersBeforeFirstEvent: an engine that answers with its
// headers and then works on a long prompt gives the client those headers
// at once, not with the first token.
func TestStreamHeadersBeforeFirstEvent(t *testing.T) {
	release := make(chan struct{})
	_, gw := behindGateway(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		<-release // the prefill
		io.WriteString(w, "data: {\"choices\":[]}\n\ndata: [DONE]\n\n")
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", gw+"/v1/chat/completions",
		strings.NewReader(`{"model":"scout","stream":true,"messages":[]}`))
	resp, err := http.DefaultClient.Do(req) // returns with the headers
	close(release)
	if err != nil {
		t.Fatalf("no headers while the engine was at the prompt: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Gantry-Served-By") != "scout" {
		t.Fatalf("status %d, served by %q", resp.StatusCode, resp.Header.Get("X-Gantry-Served-By"))
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: {\"choices\":[]}\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
}

// TestHopByHopAndBrowserHeadersStay: what a browser says of its page, the
// client's key and every header a Connection header names stay with
// gantry; the engine's CORS headers never reach the client.
func TestHopByHopAndBrowserHeadersStay(t *testing.T) {
	seen := make(chan http.Header, 1)
	_, gw := behindGateway(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		seen <- r.Header.Clone()
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Connection", "X-Engine-Private")
		w.Header().Set("X-Engine-Private", "secret")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	req, _ := http.NewRequest("POST", gw+"/v1/chat/completions", strings.NewReader(`{"model":"scout"}`))
	req.Header.Set("Connection", "X-Client-Private, keep-alive")
	req.Header.Set("X-Client-Private", "mine")
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Cookie", "session=1")
	req.Header.Set("Authorization", "Bearer sk-client")
	req.Header.Set("X-Passed", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	for _, k := range []string{"X-Client-Private", "Origin", "Cookie", "Authorization"} {
		if h.Get(k) != "" {
			t.Errorf("the engine got %s: %q", k, h.Get(k))
		}
	}
	if h.Get("X-Passed") != "yes" {
		t.Error("an ordinary header was dropped")
	}
	for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "X-Engine-Private"} {
		if resp.Header.Get(k) != "" {
			t.Errorf("the client got the engine's %s: %q", k, resp.Header.Get(k))
		}
	}
}

// TestQuietHearsEachRequest: the gateway tells its Quiet when each
// request begins and ends — a stream, a plain answer, a refusal — so the
// heap is trimmed once they are all done (an end without its begin would
// leave the count below zero, and no trim would come).
func TestQuietHearsEachRequest(t *testing.T) {
	trimmed := make(chan struct{}, 1)
	q := trim.NewFunc(time.Millisecond, 0, func() {
		select {
		case trimmed <- struct{}{}:
		default:
		}
	})
	defer q.Stop()
	_, gw := behindGateway(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[]}\n\ndata: [DONE]\n\n")
	}), func(g *Gateway) { g.SetQuiet(q) })
	for _, body := range []string{`{"model":"scout","stream":true}`, `{"model":"scout"}`, `{"model":"nobody"}`} {
		resp, err := http.Post(gw+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	select {
	case <-trimmed:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim after the requests ended")
	}
}

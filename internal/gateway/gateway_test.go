package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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

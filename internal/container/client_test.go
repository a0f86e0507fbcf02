package container

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

// engineAPI is a stand-in for the two Engine API calls a removal makes:
// DELETE /containers/{id} answers as moby does while another removal of
// the same container runs (409, daemon/delete.go), and
// POST /containers/{id}/wait?condition=removed answers once removed is
// closed.
func engineAPI(t *testing.T, waiting chan<- struct{}, removed <-chan struct{}) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Header().Set("API-Version", "1.52")
			w.Write([]byte("OK"))
		case r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/containers/"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"message":"removal of container abc is already in progress"}`))
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/wait") && r.URL.Query().Get("condition") == "removed":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			close(waiting)
			select {
			case <-removed:
			case <-r.Context().Done():
				return
			}
			w.Write([]byte(`{"StatusCode":0}`))
		default:
			http.Error(w, `{"message":"unexpected `+r.Method+" "+r.URL.Path+`"}`, http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithAPIVersion("1.52"))
	if err != nil {
		t.Fatal(err)
	}
	return &Client{c: c}
}

// TestRemoveWaitsForARemovalUnderWay: a removal that meets another one of
// the same container returns once the container is gone, without an
// error — not at once, which left the container behind a stop.
func TestRemoveWaitsForARemovalUnderWay(t *testing.T) {
	waiting, removed := make(chan struct{}), make(chan struct{})
	c := engineAPI(t, waiting, removed)
	done := make(chan error, 1)
	go func() { done <- c.Remove(context.Background(), "abc") }()
	select {
	case err := <-done:
		t.Fatalf("Remove returned before the container was gone: %v", err)
	case <-waiting: // it waits for the removal under way
	}
	close(removed)
	if err := <-done; err != nil {
		t.Fatalf("Remove after the other removal ended: %v", err)
	}
}

// TestRemoveOtherConflictIsAnError: a 409 that is not a removal under way
// (a container that cannot be removed) stays an error.
func TestRemoveOtherConflictIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"message":"cannot remove container abc: could not kill: tried to kill container, but did not receive an exit event"}`))
	}))
	defer srv.Close()
	cl, err := client.New(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithAPIVersion("1.52"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{c: cl}
	if err := c.Remove(context.Background(), "abc"); err == nil || !strings.Contains(err.Error(), "could not kill") {
		t.Fatalf("Remove = %v, want the daemon's refusal", err)
	}
}

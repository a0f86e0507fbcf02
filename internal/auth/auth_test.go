package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRemovedKeyEndsItsStream: an admin stream opened with a key that a
// reload removes ends; one whose key stays goes on.
func TestRemovedKeyEndsItsStream(t *testing.T) {
	k := New(nil, []string{"old-admin", "kept-admin"})
	ended := make(chan string, 2)
	started := make(chan struct{}, 2)
	h := k.Admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			ended <- r.Header.Get("Authorization")
		case <-time.After(time.Second):
			ended <- "still streaming"
		}
	}))
	for _, key := range []string{"old-admin", "kept-admin"} {
		r := httptest.NewRequest("GET", "/api/events", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		go h.ServeHTTP(httptest.NewRecorder(), r)
	}
	<-started
	<-started
	k.Update(nil, []string{"kept-admin"})
	if got := <-ended; got != "Bearer old-admin" {
		t.Fatalf("first to end: %q, want the removed key's stream", got)
	}
	if got := <-ended; got != "still streaming" {
		t.Errorf("the kept key's stream: %q", got)
	}
}

func TestKeyNames(t *testing.T) {
	k := New([]string{"sk-a", "sk-b"}, []string{"sk-admin"})
	for key, want := range map[string]string{"sk-a": "key 1", "sk-b": "key 2", "sk-admin": "admin key 1", "sk-nope": "", "": ""} {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		if got := k.Name(r); got != want {
			t.Errorf("%q: %q, want %q", key, got, want)
		}
	}
}

package auth

import (
	"context"
	"errors"
	"strings"

	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/config"
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

func namedConfig() config.Auth {
	return config.Auth{
		APIKeys: []string{"sk-list"},
		Keys: map[string]*config.Key{
			"alice": {Key: "sk-alice", Models: []string{"scout", "qwen*"}, RPM: 5, Priority: config.PriorityInteractive},
			"bot":   {Key: "sk-bot", Priority: config.PriorityBatch},
			"ops":   {Key: "sk-ops", Admin: true, Priority: config.PriorityInteractive},
		},
	}
}

// TestNamedKeys: each named key is found with its name, models, priority
// and limits; the lists keep their names; the admin API takes the admin
// ones only (api_keys are not admin once admin keys exist among the named).
func TestNamedKeys(t *testing.T) {
	k := FromConfig(namedConfig())
	var seen *Key
	gw := k.Gateway(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = From(r.Context()) }))
	adm := k.Admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
	for _, tc := range []struct {
		key, name      string
		gateway, admin int
	}{
		{"sk-alice", "alice", 200, 403},
		{"sk-bot", "bot", 200, 403},
		{"sk-ops", "ops", 200, 299},
		{"sk-list", "key 1", 200, 299}, // admin_keys is empty: the list's keys are admin, as before
		{"sk-nope", "", 401, 401},
		{"", "", 401, 401},
	} {
		seen = nil
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		if tc.key != "" {
			r.Header.Set("Authorization", "Bearer "+tc.key)
		}
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, r)
		if rec.Code != tc.gateway {
			t.Errorf("%q on the gateway: %d, want %d", tc.key, rec.Code, tc.gateway)
		}
		if got := ""; seen != nil {
			got = seen.Name
			if got != tc.name {
				t.Errorf("%q: named %q, want %q", tc.key, got, tc.name)
			}
		}
		if got := k.Name(r); got != tc.name {
			t.Errorf("Name(%q) = %q, want %q", tc.key, got, tc.name)
		}
		rec = httptest.NewRecorder()
		adm.ServeHTTP(rec, r)
		if rec.Code != tc.admin {
			t.Errorf("%q on the admin API: %d, want %d", tc.key, rec.Code, tc.admin)
		}
		if strings.Contains(rec.Body.String(), "sk-") {
			t.Errorf("an answer shows a key: %s", rec.Body)
		}
	}
	alice := k.ByName("alice")
	if !alice.Restricted() || !alice.Sees("scout") || !alice.Sees("qwen3-8b") || alice.Sees("r1") || alice.Limit == nil {
		t.Errorf("alice: %+v", alice)
	}
	if bot := k.ByName("bot"); bot.Restricted() || !bot.Sees("anything") || !bot.Batch || bot.Limit != nil {
		t.Errorf("bot: %+v", bot)
	}
	if got := strings.Join(k.Names(), ","); got != "key 1,alice,bot,ops" {
		t.Errorf("names %s", got)
	}
}

// TestOnlyRestrictedKeys: named keys without any admin key close the admin
// API to everybody (a restricted key must not reach /upstream or stop
// models), and close the gateway to requests without a key.
func TestOnlyRestrictedKeys(t *testing.T) {
	k := FromConfig(config.Auth{Keys: map[string]*config.Key{"alice": {Key: "sk-alice", Models: []string{"a"}}}})
	if k.Open() {
		t.Fatal("gateway open with a named key")
	}
	adm := k.Admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for key, want := range map[string]int{"": 401, "sk-alice": 403} {
		r := httptest.NewRequest("GET", "/api/status", nil)
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		rec := httptest.NewRecorder()
		adm.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("%q: %d, want %d", key, rec.Code, want)
		}
	}
}

// TestReloadKeepsLimits: a reload keeps a key's place in its limits when
// its name and limits stay, and starts afresh when they change.
func TestReloadKeepsLimits(t *testing.T) {
	c := namedConfig()
	k := FromConfig(c)
	before := k.ByName("alice").Limit
	k.Set(c)
	if k.ByName("alice").Limit != before {
		t.Error("an unchanged key lost its limits' state")
	}
	c.Keys["alice"] = &config.Key{Key: "sk-alice", RPM: 6}
	k.Set(c)
	if k.ByName("alice").Limit == before || k.ByName("alice").Limit.Limits().RPM != 6 {
		t.Error("a changed limit kept the old state")
	}
}

// TestPriorityHeader: any key may ask to wait as batch; only an admin key
// may ask for interactive.
func TestPriorityHeader(t *testing.T) {
	k := FromConfig(namedConfig())
	for _, tc := range []struct {
		key, header string
		batch       bool
	}{
		{"alice", "", false}, {"alice", "batch", true}, {"bot", "", true},
		{"bot", "interactive", true}, {"ops", "batch", true}, {"ops", "interactive", false},
	} {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		if tc.header != "" {
			r.Header.Set(PriorityHeader, tc.header)
		}
		if got := k.ByName(tc.key).BatchFor(r); got != tc.batch {
			t.Errorf("%s with %q: batch %v, want %v", tc.key, tc.header, got, tc.batch)
		}
	}
	if (*Key)(nil).BatchFor(httptest.NewRequest("GET", "/", nil)) {
		t.Error("an open gateway's request is batch")
	}
}

// TestRemovedKeyEndsItsInferenceStream: a gateway request (a stream, or
// one waiting for its model) admitted with a key that a reload removes
// ends, as admin streams do (they outlived their key); one whose key
// stays goes on, through more than one reload, until its key goes too.
func TestRemovedKeyEndsItsInferenceStream(t *testing.T) {
	k := New([]string{"sk-old", "sk-kept"}, nil)
	ctxs := make(chan context.Context, 2)
	h := k.Gateway(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctxs <- r.Context()
		<-r.Context().Done()
	}))
	started := map[string]context.Context{}
	for _, key := range []string{"sk-old", "sk-kept"} {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		go h.ServeHTTP(httptest.NewRecorder(), r)
		started[key] = <-ctxs
	}
	wait := func(ctx context.Context, what string) {
		t.Helper()
		select {
		case <-ctx.Done():
			if !errors.Is(context.Cause(ctx), ErrKeyRemoved) {
				t.Errorf("%s ended with %v", what, context.Cause(ctx))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not end", what)
		}
	}
	k.Update([]string{"sk-kept"}, nil)
	wait(started["sk-old"], "the removed key's stream")
	k.Update([]string{"sk-kept", "sk-new"}, nil)
	if err := started["sk-kept"].Err(); err != nil {
		t.Fatalf("the kept key's stream ended: %v", context.Cause(started["sk-kept"]))
	}
	k.Update([]string{"sk-new"}, nil)
	wait(started["sk-kept"], "the kept key's stream, once its key went too")
}

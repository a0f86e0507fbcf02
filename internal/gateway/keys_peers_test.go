package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/peers"
	"github.com/gantryhq/gantry/internal/status"
)

// TestRestrictedKeyAndPeerAliases: a key that sees a peer's model sees
// that model's aliases on the peer too — listed in /v1/models and served —
// as it does a local model's; a peer's model it does not see stays hidden
// with its aliases. What /v1/models lists, a request may use.
func TestRestrictedKeyAndPeerAliases(t *testing.T) {
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/models" {
			io.WriteString(w, `{"object":"list","data":[
{"id":"big","gantry":{"state":"ready","engine":"sim"}},
{"id":"bigalias","gantry":{"state":"ready","engine":"sim","alias_of":"big"}},
{"id":"other","gantry":{"state":"ready","engine":"sim"}},
{"id":"otheralias","gantry":{"state":"ready","engine":"sim","alias_of":"other"}}]}`)
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"from the peer"}}]}`)
	}))
	t.Cleanup(peer.Close)
	g, c := newTestGateway(t, `auth:
  keys:
    alice: {key: sk-alice-secret, models: [big]}
peers:
  spark2: {url: `+peer.URL+`}
models:
  local: {engine: sim, memory: 1GiB, port: ENGINE_local}
`, map[string]http.Handler{"local": engines()["scout"]}, nil)
	up := make(chan struct{}, 1)
	set := peers.New(c, func(e status.Event) {
		select {
		case up <- struct{}{}:
		default:
		}
	})
	t.Cleanup(set.Close)
	for len(set.Holders("otheralias")) == 0 {
		<-up // the peer's first check
	}
	g.SetPeers(set)
	keys := auth.FromConfig(c.Auth)
	mux := http.NewServeMux()
	g.Register(mux, Wraps{Gateway: keys.Gateway, Admin: keys.Admin})
	gw := httptest.NewServer(mux)
	t.Cleanup(gw.Close)

	_, _, list := do(t, "GET", gw.URL+"/v1/models", "sk-alice-secret", "")
	for name, want := range map[string]bool{`"big"`: true, `"bigalias"`: true, `"other"`: false, `"otheralias"`: false, `"local"`: false} {
		if strings.Contains(list, name) != want {
			t.Errorf("alice's /v1/models lists %s: %v, want %v: %s", name, !want, want, list)
		}
	}
	chat := `{"model":%q,"messages":[{"role":"user","content":"hi"}]}`
	for name, want := range map[string]int{"big": 200, "bigalias": 200, "other": 404, "otheralias": 404} {
		if code, _, body := do(t, "POST", gw.URL+"/v1/chat/completions", "sk-alice-secret", strings.Replace(chat, "%q", `"`+name+`"`, 1)); code != want {
			t.Errorf("alice asking for %s: %d %s, want %d", name, code, body, want)
		}
	}
}

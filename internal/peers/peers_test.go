package peers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// fakeGantry answers /v1/models as a gantry does, and /v1/chat/completions
// with a stream that waits for release between its two events.
type fakeGantry struct {
	srv     *httptest.Server
	failing atomic.Bool // /v1/models answers 500
	via     atomic.Value
	auth    atomic.Value
	release chan struct{}
}

func newFake(t *testing.T) *fakeGantry {
	f := &fakeGantry{release: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.via.Store(r.Header.Get(Via))
		f.auth.Store(r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/v1/models":
			if f.failing.Load() {
				http.Error(w, "broken", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, `{"object":"list","data":[
				{"id":"beta","gantry":{"state":"ready","engine":"sim"}},
				{"id":"bee","gantry":{"state":"ready","engine":"sim","alias_of":"beta"}},
				{"id":"gamma","gantry":{"state":"stopped","engine":"vllm"}},
				{"id":"far","gantry":{"state":"ready","engine":"sim","peer":"spark3"}}]}`)
		case "/v1/chat/completions":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-f.release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "data: two\n\n")
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func cfgWith(peers map[string]*config.Peer) *config.Config {
	c := &config.Config{Listen: "127.0.0.1:4000", Peers: peers}
	for name, p := range peers {
		p.Name = name
		if p.HealthInterval == 0 {
			p.HealthInterval = config.Duration(time.Hour) // checks come from the test
		}
		if p.ConnectTimeout == 0 {
			p.ConnectTimeout = config.Duration(2 * time.Second)
		}
	}
	return c
}

// watchEvents returns the set's event hook and a function that waits for
// the next event about peer with state to.
func watchEvents(t *testing.T) (func(status.Event), func(peer, to string) status.Event) {
	ch := make(chan status.Event, 16)
	var seen []status.Event // events not waited for yet, in order
	return func(ev status.Event) { ch <- ev }, func(peer, to string) status.Event {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			for i, ev := range seen {
				if ev.Model == peer && ev.To == to {
					seen = append(seen[:i], seen[i+1:]...)
					return ev
				}
			}
			select {
			case ev := <-ch:
				seen = append(seen, ev)
			case <-timeout:
				t.Fatalf("peer %s never went %s (events: %+v)", peer, to, seen)
			}
		}
	}
}

func TestCheckListsThePeersOwnModels(t *testing.T) {
	f := newFake(t)
	hook, wait := watchEvents(t)
	s := New(cfgWith(map[string]*config.Peer{"spark2": {URL: f.srv.URL, Token: "sk-2"}}), hook)
	defer s.Close()
	wait("spark2", status.PeerUp)
	if v, a := f.via.Load(), f.auth.Load(); v != "127.0.0.1:4000" || a != "Bearer sk-2" {
		t.Errorf("the check sent Via %q and Authorization %q", v, a)
	}
	st := s.Status()
	if len(st) != 1 || st[0].State != status.PeerUp || st[0].CheckedAt == nil {
		t.Fatalf("status %+v", st)
	}
	var names []string
	for _, m := range st[0].Models {
		names = append(names, m.Name)
	}
	// The peer's own peer's model is not the peer's to serve: no loops.
	if got := strings.Join(names, ","); got != "bee,beta,gamma" {
		t.Errorf("models %s, want bee,beta,gamma", got)
	}
	if hs := s.Holders("bee"); len(hs) != 1 || hs[0].Name() != "spark2" {
		t.Errorf("holders of bee: %v", hs)
	}
	if hs := s.Holders("far"); len(hs) != 0 {
		t.Errorf("far is held by %v", hs)
	}
	if st, ok := s.Get("spark2").ModelState("gamma"); !ok || st != status.Stopped {
		t.Errorf("gamma's state %q %v", st, ok)
	}
}

func TestHoldersPutReadyAndUpFirst(t *testing.T) {
	a, b := newFake(t), newFake(t)
	hook, wait := watchEvents(t)
	s := New(cfgWith(map[string]*config.Peer{"a": {URL: a.srv.URL}, "b": {URL: b.srv.URL}}), hook)
	defer s.Close()
	wait("a", status.PeerUp)
	wait("b", status.PeerUp)
	if hs := s.Holders("beta"); len(hs) != 2 || hs[0].Name() != "a" {
		t.Fatalf("holders %v", hs)
	}
	a.srv.Close()
	s.Get("a").check()
	wait("a", status.PeerDown)
	if hs := s.Holders("beta"); len(hs) != 2 || hs[0].Name() != "b" || hs[1].Up() {
		t.Errorf("after a went down: holders %v", hs)
	}
}

func TestARefusedConnectionIsDownAtOnce(t *testing.T) {
	f := newFake(t)
	hook, wait := watchEvents(t)
	s := New(cfgWith(map[string]*config.Peer{"spark2": {URL: f.srv.URL}}), hook)
	defer s.Close()
	wait("spark2", status.PeerUp)
	f.srv.Close()
	_, err := s.Get("spark2").Do(context.Background(), http.MethodPost, "/v1/chat/completions", http.Header{}, []byte("{}"))
	if err == nil {
		t.Fatal("a closed peer answered")
	}
	ev := wait("spark2", status.PeerDown)
	if !strings.Contains(ev.Reason, "refused") {
		t.Errorf("down because %q", ev.Reason)
	}
	if s.Get("spark2").Up() {
		t.Error("still up")
	}
}

func TestOneFailedCheckIsNotAnOutageTwoAre(t *testing.T) {
	f := newFake(t)
	hook, wait := watchEvents(t)
	s := New(cfgWith(map[string]*config.Peer{"spark2": {URL: f.srv.URL}}), hook)
	defer s.Close()
	wait("spark2", status.PeerUp)
	p := s.Get("spark2")
	f.failing.Store(true)
	p.check()
	if !p.Up() {
		t.Fatal("down after one failed check")
	}
	p.check()
	ev := wait("spark2", status.PeerDown)
	if !strings.Contains(ev.Reason, "500") {
		t.Errorf("reason %q does not say what the peer answered", ev.Reason)
	}
	f.failing.Store(false)
	p.check()
	wait("spark2", status.PeerUp)
}

// A link that is cut sends no reset: the relay over it ends when the
// checks take the peer for down, with the reason.
func TestGoingDownCutsTheRelays(t *testing.T) {
	f := newFake(t)
	hook, wait := watchEvents(t)
	s := New(cfgWith(map[string]*config.Peer{"spark2": {URL: f.srv.URL}}), hook)
	defer s.Close()
	wait("spark2", status.PeerUp)
	p := s.Get("spark2")
	resp, err := p.Do(context.Background(), http.MethodPost, "/v1/chat/completions", http.Header{}, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "one") {
		t.Fatalf("first event %q %v", buf[:n], err)
	}
	f.failing.Store(true)
	p.check()
	p.check()
	wait("spark2", status.PeerDown)
	_, err = io.ReadAll(resp.Body)
	if err == nil || !strings.Contains(err.Error(), "peer spark2 went down") {
		t.Errorf("the relay ended with %v", err)
	}
	close(f.release)
}

func TestUpdateKeepsUnchangedPeers(t *testing.T) {
	a, b := newFake(t), newFake(t)
	hook, wait := watchEvents(t)
	s := New(cfgWith(map[string]*config.Peer{"a": {URL: a.srv.URL}}), hook)
	defer s.Close()
	wait("a", status.PeerUp)
	kept := s.Get("a")
	s.Update(cfgWith(map[string]*config.Peer{"a": {URL: a.srv.URL}, "b": {URL: b.srv.URL}}))
	wait("b", status.PeerUp)
	if s.Get("a") != kept {
		t.Error("an unchanged peer was replaced")
	}
	s.Update(cfgWith(map[string]*config.Peer{"b": {URL: b.srv.URL}}))
	if s.Get("a") != nil || s.Empty() {
		t.Errorf("after removing a: a %v, empty %v", s.Get("a"), s.Empty())
	}
	if kept.done.Err() == nil {
		t.Error("the removed peer's watcher still runs")
	}
}

func TestAnUnknownAnswerIsNotAPeer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html>not gantry</html>")
	}))
	defer srv.Close()
	hook, wait := watchEvents(t)
	s := New(cfgWith(map[string]*config.Peer{"x": {URL: srv.URL}}), hook)
	defer s.Close()
	ev := wait("x", status.PeerDown)
	if !strings.Contains(ev.Reason, "not a gantry's model list") {
		t.Errorf("reason %q", ev.Reason)
	}
}

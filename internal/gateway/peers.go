package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/peers"
	"github.com/gantryhq/gantry/internal/status"
)

// The errors of requests for a peer's model.
var (
	// ErrPeerDown: every box that has the model is down.
	ErrPeerDown = apierr.New(apierr.PeerDown, "peer down")
	// ErrPeerUnreachable: the relay to the peer failed before its answer.
	ErrPeerUnreachable = apierr.New(apierr.PeerUnreachable, "peer unreachable")
)

// SetPeers makes the gateway list the peers' models and relay requests
// for them. Call before serving; s may be nil (no peers).
func (g *Gateway) SetPeers(s *peers.Set) { g.peers = s }

// peerModels are the /v1/models entries of the peers' models that this
// gantry does not have itself; a down peer's models are listed with the
// state peer_down, so a client sees them and gets the 503 that says why.
func (g *Gateway) peerModels(local []modelEntry) []modelEntry {
	seen := make(map[string]bool, len(local))
	for _, e := range local {
		seen[e.ID] = true
	}
	var out []modelEntry
	for _, ps := range g.peers.Status() {
		for _, m := range ps.Models {
			if seen[m.Name] {
				continue
			}
			seen[m.Name] = true
			state := string(m.State)
			if ps.State != status.PeerUp {
				state = "peer_down"
			}
			out = append(out, modelEntry{ID: m.Name, Object: "model", OwnedBy: "gantry",
				Gantry: gantryInfo{State: state, Engine: m.Engine, AliasOf: m.AliasOf, Peer: ps.Name}})
		}
	}
	return out
}

// relayable reports whether a request may go to a peer: peers are
// configured and it did not come from one (what a peer sends is served
// here, so A → B → A cannot happen).
func (g *Gateway) relayable(r *http.Request) bool {
	return !g.peers.Empty() && r.Header.Get(peers.Via) == ""
}

// peerFor decides where a request for name goes: a peer, or nil for this
// gantry. A model here that is ready is served here; one only a peer has
// goes there (a 503 naming the peer when it is down); one both have goes
// to whichever has it ready, else to the model's prefer: box while that is
// up, else here.
func (g *Gateway) peerFor(r *http.Request, name string) (*peers.Peer, error) {
	if !g.relayable(r) {
		return nil, nil
	}
	m := g.sched.Config().Resolve(name)
	st, here := g.sched.StateOf(name)
	if m != nil && m.Follower() {
		here = false // this box runs a rank of it; the leader serves it
	}
	if here && st == status.Ready {
		return nil, nil // the common case: no look at the peers
	}
	holders := g.peers.Holders(name)
	if len(holders) == 0 {
		return nil, nil
	}
	if !here {
		if p := holders[0]; p.Up() {
			return p, nil
		}
		return nil, peerDown(name, holders)
	}
	if !holders[0].Up() {
		return nil, nil
	}
	if s, _ := holders[0].ModelState(name); s == status.Ready {
		return holders[0], nil
	}
	if m != nil {
		if p := g.peers.Get(m.PreferredPeer()); p != nil && p.Up() {
			if _, ok := p.ModelState(name); ok {
				return p, nil
			}
		}
	}
	return nil, nil
}

// failover is the peer that takes a request this gantry could not serve
// (its model failed to start, or does not fit): an up peer that has the
// model, nil when there is none.
func (g *Gateway) failover(r *http.Request, name string) *peers.Peer {
	if !g.relayable(r) || r.Context().Err() != nil {
		return nil
	}
	if hs := g.peers.Holders(name); len(hs) > 0 && hs[0].Up() {
		return hs[0]
	}
	return nil
}

func peerDown(name string, holders []*peers.Peer) error {
	var parts []string
	for _, p := range holders {
		parts = append(parts, fmt.Sprintf("peer %s (%s), which is down: %s", p.Name(), p.URL(), p.Err()))
	}
	return fmt.Errorf("%w: %s is served by %s; it comes back when the peer answers again",
		ErrPeerDown, quote(name), strings.Join(parts, ", and by "))
}

// relayPeer sends the request, body and all, to the peer's gateway on the
// same route and relays its answer as it comes: events flushed one by one,
// as from a local engine. An error means nothing was written: the peer
// could not be reached (it is marked down when it refused).
func (g *Gateway) relayPeer(q *request, p *peers.Peer, body []byte) error {
	r := q.r
	if x := q.act(); x != nil {
		x.served, x.stripUsage = x.asked+"@"+p.Name(), false
	}
	named := connectionNamed(r.Header)
	h := make(http.Header, len(r.Header))
	for k, vs := range r.Header {
		if !hopHeaders[k] && !named[k] {
			h[k] = vs
		}
	}
	if q.span != nil {
		q.span.Answer(q.label, p.Name(), h) // the peer's gantry continues the trace
	}
	resp, err := p.Do(r.Context(), r.Method, r.URL.RequestURI(), h, body)
	if err != nil {
		if !p.Up() {
			return fmt.Errorf("%w: peer %s (%s) is down: %v", ErrPeerDown, p.Name(), p.URL(), err)
		}
		return fmt.Errorf("%w: peer %s (%s) did not answer: %v", ErrPeerUnreachable, p.Name(), p.URL(), err)
	}
	defer resp.Body.Close()
	out := q.Header()
	answerHeaders(out, resp.Header)
	out.Set("X-Gantry-Peer", p.Name())
	if resp.ContentLength >= 0 {
		out.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	q.WriteHeader(resp.StatusCode)
	sse := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if sse {
		http.NewResponseController(q).Flush() //nolint:errcheck // a gone client shows at the first write
	}
	if err := g.pump(q, resp, sse); err != nil {
		g.logger.Warn("peer's response cut", "peer", p.Name(), "err", err)
		cutShort(q, sse, fmt.Sprintf("peer %s (%s) went away mid-answer: %v", p.Name(), p.URL(), err))
	}
	return nil
}

// toPeer relays a request to p; when p cannot be reached, a model this
// gantry has is served here instead (done false), else the error is
// answered in the route's shape (shape nil: OpenAI's).
func (g *Gateway) toPeer(q *request, p *peers.Peer, name string, body []byte,
	shape func(http.ResponseWriter, int, string, string)) (done bool) {
	err := g.relayPeer(q, p, body)
	switch {
	case err == nil:
		return true
	case q.gone():
		return true // the client went away: nobody to answer
	}
	if m := g.sched.Config().Resolve(name); m != nil && !m.Follower() {
		g.logger.Warn("peer unreachable; serving here", "model", name, "err", err)
		return false
	}
	writeShaped(q, shape, err)
	return true
}

// writeShaped answers err in a route's error shape (nil: OpenAI's).
func writeShaped(w http.ResponseWriter, shape func(http.ResponseWriter, int, string, string), err error) {
	if shape == nil {
		apierr.WriteErr(w, err)
		return
	}
	a := apierr.Map(err)
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	shape(w, a.Status, a.Code, err.Error())
}

// labelOf is the metrics label of a request for name: the configured
// model's name, or the name a peer lists (never a made-up one).
func (g *Gateway) labelOf(name string) string {
	if m := g.sched.Config().Resolve(name); m != nil {
		return m.Name
	}
	if len(g.peers.Holders(name)) > 0 {
		return name
	}
	return "-"
}

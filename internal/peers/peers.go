// Package peers watches the other gantry instances of a config's peers:
// (other boxes) and carries requests to them. Each peer is checked on its
// own interval through its /v1/models, which also says which models it
// serves and in what state; a peer that fails two checks in a row, or
// refuses a connection, is down until a check succeeds again, and every
// request relayed to it is cut when it goes down.
//
// Loops are impossible by construction: what gantry sends a peer carries
// the Via header, a gantry never relays a request that carries it, and a
// peer asked for its models with it lists only its own.
package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// Via is the header on every request one gantry sends another. A request
// that carries it is served locally, never relayed again; /v1/models with
// it lists only the local models.
const Via = "X-Gantry-Via"

// downAfter is how many checks in a row must fail before a peer that
// answered is taken for down: one slow answer is not an outage. A refused
// connection counts at once.
const downAfter = 2

// Set is the peers of one config. Its methods are safe for concurrent use.
type Set struct {
	self string       // this gantry's listen address, sent in Via
	n    atomic.Int32 // len(m), read without the lock on every request
	// changed hears every change of a peer's state (KindPeer events).
	changed func(status.Event)
	mu      sync.RWMutex
	m       map[string]*Peer
}

// New starts watching the peers of cfg; Close stops. changed, when not
// nil, hears each peer going up or down (from its own goroutine; it must
// not block).
func New(cfg *config.Config, changed func(status.Event)) *Set {
	if changed == nil {
		changed = func(status.Event) {}
	}
	s := &Set{self: cfg.Listen, m: map[string]*Peer{}, changed: changed}
	s.Update(cfg)
	return s
}

// Update follows a reloaded config: new peers are watched, removed ones
// stopped (their relays cut), unchanged ones keep their state.
func (s *Set) Update(cfg *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.m {
		if c, ok := cfg.Peers[name]; !ok || *c != p.cfg {
			p.close()
			delete(s.m, name)
		}
	}
	for name, c := range cfg.Peers {
		if _, ok := s.m[name]; !ok {
			p := newPeer(*c, s.self, s.changed)
			s.m[name] = p
			go p.watch()
		}
	}
	s.n.Store(int32(len(s.m)))
}

// Close stops every watcher and cuts every relay.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.m {
		p.close()
		delete(s.m, name)
	}
	s.n.Store(0)
}

// Empty reports whether no peer is configured.
func (s *Set) Empty() bool {
	return s == nil || s.n.Load() == 0
}

// Holders are the peers whose last known list has name, by name; up ones
// first, and among those the ones where it is ready.
func (s *Set) Holders(name string) []*Peer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Peer
	for _, p := range s.m {
		if _, ok := p.model(name); ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *Peer) int {
		if d := a.rank(name) - b.rank(name); d != 0 {
			return d
		}
		if a.cfg.Name < b.cfg.Name {
			return -1
		}
		return 1
	})
	return out
}

// Get is the peer of that name, nil when there is none.
func (s *Set) Get(name string) *Peer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[name]
}

// Status is every peer's state and models, by name.
func (s *Set) Status() []status.PeerStatus {
	s.mu.RLock()
	ps := make([]*Peer, 0, len(s.m))
	for _, p := range s.m {
		ps = append(ps, p)
	}
	s.mu.RUnlock()
	slices.SortFunc(ps, func(a, b *Peer) int {
		if a.cfg.Name < b.cfg.Name {
			return -1
		}
		return 1
	})
	out := make([]status.PeerStatus, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Status())
	}
	return out
}

// Peer is one other gantry.
type Peer struct {
	cfg     config.Peer
	self    string
	changed func(status.Event)
	tr      *http.Transport
	stop    context.CancelFunc
	done    context.Context // ends when the peer is removed

	mu      sync.Mutex
	state   string
	errText string
	fails   int
	checked time.Time
	models  map[string]status.PeerModel // the last list it gave
	// alive ends when the peer goes down: every relay to it is cut then
	// (a link that is cut sends no reset; a stream over it would hang).
	alive      context.Context
	cancelLive context.CancelFunc
	// checkNow wakes the watcher: a relay found the peer unreachable.
	checkNow chan struct{}
}

func newPeer(c config.Peer, self string, changed func(status.Event)) *Peer {
	dialer := &net.Dialer{Timeout: c.ConnectTimeout.D(), KeepAlive: 15 * time.Second}
	done, stop := context.WithCancel(context.Background())
	p := &Peer{cfg: c, self: self, changed: changed, stop: stop, done: done, state: status.PeerUnknown,
		models: map[string]status.PeerModel{}, checkNow: make(chan struct{}, 1),
		tr: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			// The peer's own gateway answers gzip only when asked; what the
			// client asked for passes through untouched.
			DisableCompression: true,
			// No header time-out: a cold start on the peer takes as long
			// as its start_timeout, and the peer answers (or sends
			// keep-alives) by then. A peer that goes quiet is cut by its
			// health checks instead.
			ResponseHeaderTimeout: 0,
		}}
	p.alive, p.cancelLive = context.WithCancel(done)
	return p
}

// Name is the peer's key under peers:.
func (p *Peer) Name() string { return p.cfg.Name }

// URL is the peer's gateway as gantry shows it: without a user name or
// password, should the config carry one (validation refuses them).
func (p *Peer) URL() string { return config.RedactURL(p.cfg.URL) }

func (p *Peer) close() {
	p.stop()
	p.tr.CloseIdleConnections()
}

// Up reports whether the peer answered its last check.
func (p *Peer) Up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == status.PeerUp
}

// State is PeerUp, PeerDown or PeerUnknown (not checked yet).
func (p *Peer) State() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Err is why the peer is down ("" when it is not).
func (p *Peer) Err() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errText
}

// ModelState is the state of name on the peer at its last check.
func (p *Peer) ModelState(name string) (status.State, bool) {
	m, ok := p.model(name)
	return m.State, ok
}

// AliasOf is the model name stands for on the peer when the peer lists
// it as an alias, "" otherwise.
func (p *Peer) AliasOf(name string) string {
	m, _ := p.model(name)
	return m.AliasOf
}

func (p *Peer) model(name string) (status.PeerModel, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.models[name]
	return m, ok
}

// rank orders holders: up and ready 0, up 1, down 2.
func (p *Peer) rank(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state != status.PeerUp:
		return 2
	case p.models[name].State == status.Ready:
		return 0
	}
	return 1
}

// Status is the peer's state and last known models.
func (p *Peer) Status() status.PeerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := status.PeerStatus{Name: p.cfg.Name, URL: p.URL(), State: p.state, Error: p.errText, Models: []status.PeerModel{}}
	if !p.checked.IsZero() {
		t := p.checked
		st.CheckedAt = &t
	}
	for _, name := range slices.Sorted(maps.Keys(p.models)) {
		st.Models = append(st.Models, p.models[name])
	}
	return st
}

// watch checks the peer at once and then on its interval until removed.
func (p *Peer) watch() {
	t := time.NewTicker(p.cfg.HealthInterval.D())
	defer t.Stop()
	for {
		p.check()
		select {
		case <-p.done.Done():
			return // alive ends with done
		case <-t.C:
		case <-p.checkNow:
		}
	}
}

// modelList is the part of a peer's /v1/models gantry reads.
type modelList struct {
	Data []struct {
		ID     string `json:"id"`
		Gantry struct {
			State   status.State `json:"state"`
			Engine  string       `json:"engine"`
			AliasOf string       `json:"alias_of"`
			Peer    string       `json:"peer"`
		} `json:"gantry"`
	} `json:"data"`
}

// check asks the peer for its own models.
func (p *Peer) check() {
	ctx, cancel := context.WithTimeout(p.done, p.cfg.ConnectTimeout.D())
	defer cancel()
	models, err := p.fetchModels(ctx)
	if p.done.Err() != nil {
		return
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("no answer to GET /v1/models within %s (connect_timeout)", p.cfg.ConnectTimeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checked = time.Now()
	if err != nil {
		p.fails++
		p.errText = err.Error()
		if p.fails >= downAfter || p.state != status.PeerUp || refused(err) {
			p.markDownLocked()
		}
		return
	}
	p.fails, p.errText = 0, ""
	p.models = models
	if p.state != status.PeerUp {
		p.changed(status.Event{Kind: status.KindPeer, Model: p.cfg.Name, From: p.state, To: status.PeerUp, Time: p.checked})
		p.state = status.PeerUp
		p.alive, p.cancelLive = context.WithCancel(p.done)
	}
}

func (p *Peer) markDownLocked() {
	if p.state == status.PeerDown {
		return
	}
	p.changed(status.Event{Kind: status.KindPeer, Model: p.cfg.Name, From: p.state, To: status.PeerDown,
		Reason: p.errText, Time: time.Now()})
	p.state = status.PeerDown
	p.cancelLive()
	p.tr.CloseIdleConnections()
}

// ReadBody reads a peer's answer, at most limit bytes of it, and closes
// it.
func ReadBody(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}

// refused reports an error that leaves no doubt: nothing listens there.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && !op.Timeout()
}

func (p *Peer) fetchModels(ctx context.Context) (map[string]status.PeerModel, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.URL+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	p.authorize(req.Header)
	resp, err := p.tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := ReadBody(resp, 8<<20)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/models answered %s: %s", resp.Status, firstLine(body))
	}
	var l modelList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("GET /v1/models is not a gantry's model list: %v", err)
	}
	out := make(map[string]status.PeerModel, len(l.Data))
	for _, d := range l.Data {
		if d.Gantry.Peer != "" {
			continue // an older peer that lists its own peers: not its to serve
		}
		out[d.ID] = status.PeerModel{Name: d.ID, Engine: d.Gantry.Engine, State: d.Gantry.State, AliasOf: d.Gantry.AliasOf}
	}
	return out, nil
}

func firstLine(b []byte) string {
	if i := slices.Index(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// authorize adds the peer's key and the Via header.
func (p *Peer) authorize(h http.Header) {
	if p.cfg.Token != "" {
		h.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	h.Set(Via, p.self)
}

// Do sends a request to the peer: method and path (with its query) as the
// client sent them, header already stripped of what is not relayed, and
// the body. The response's body must be closed. The request ends when ctx
// ends or the peer goes down.
func (p *Peer) Do(ctx context.Context, method, pathQuery string, header http.Header, body []byte) (*http.Response, error) {
	p.mu.Lock()
	alive := p.alive
	p.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(alive, func() { cancel(fmt.Errorf("peer %s went down: %s", p.cfg.Name, p.Err())) })
	req, err := http.NewRequestWithContext(ctx, method, p.cfg.URL+pathQuery, bytesReader(body))
	if err != nil {
		stop()
		cancel(nil)
		return nil, err
	}
	req.Header = header
	req.ContentLength = int64(len(body))
	p.authorize(req.Header)
	resp, err := p.tr.RoundTrip(req)
	if err != nil {
		stop()
		cause := context.Cause(ctx)
		cancel(nil)
		if cause != nil && ctx.Err() != nil && alive.Err() != nil {
			err = cause
		}
		p.unreachable(err)
		return nil, err
	}
	resp.Body = &cutBody{ReadCloser: resp.Body, ctx: ctx, done: func() { stop(); cancel(nil) }}
	return resp, nil
}

// unreachable takes note of a relay that failed: a refused connection
// marks the peer down at once; any other failure wakes the watcher, so a
// peer that is gone is found by one check rather than after an interval.
func (p *Peer) unreachable(err error) {
	if refused(err) {
		p.mu.Lock()
		p.errText = err.Error()
		p.markDownLocked()
		p.mu.Unlock()
	}
	select {
	case p.checkNow <- struct{}{}:
	default:
	}
}

// cutBody ends the request's context when the body is closed, and says why
// a read failed when the peer went down.
type cutBody struct {
	io.ReadCloser
	ctx  context.Context
	done func()
	once sync.Once
}

func (b *cutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); cause != nil && b.ctx.Err() != nil {
			err = cause
		}
	}
	return n, err
}

func (b *cutBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

func bytesReader(b []byte) io.Reader {
	if b == nil {
		return http.NoBody
	}
	return bytes.NewReader(b)
}

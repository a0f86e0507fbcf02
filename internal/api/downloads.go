package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/client"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/fit"
	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/status"
)

// SetDownloads lets the API start downloads (POST /api/models/get) on
// m, which outlives the requests. Call before serving.
func (s *Server) SetDownloads(m *fetch.Manager) { s.downloads = m }

// fitRequest is what GET /api/models/fit reads from its query and POST
// /api/models/get from its body.
type fitRequest struct {
	Repo        string   `json:"repo"`
	Engine      string   `json:"engine"`
	Context     int64    `json:"context"`
	Concurrency int      `json:"concurrency"`
	Quant       string   `json:"quant"`
	Name        string   `json:"name"`
	To          string   `json:"to"` // models (default) or hf-cache
	Include     []string `json:"include"`
	Exclude     []string `json:"exclude"`
	// Wait (get only, default true) streams the download's events until
	// it ends; false answers at once with where it goes.
	Wait *bool `json:"wait"`
	// From (get only) copies the files from a peer's gantry instead of the
	// Hub: a name under peers:, or "peer" for the peer the request comes
	// from (found by its address).
	From string `json:"from"`
}

// fitOf runs a fit for req against this box as the scheduler has it now
// and each peer's gantry.
func (s *Server) fitOf(ctx context.Context, req fitRequest, remote string) (*fit.Result, *hub.Client, error) {
	ref, err := hub.ParseRef(req.Repo)
	if err != nil {
		return nil, nil, apierr.New(apierr.BadRequest, err.Error())
	}
	if req.To != "" && req.To != "models" && req.To != "hf-cache" {
		return nil, nil, apierr.New(apierr.BadRequest, fmt.Sprintf("to: %q: models or hf-cache", req.To))
	}
	cfg := s.sched.Config()
	env := hub.ReadEnv(os.Getenv)
	hc := hub.New(cfg.Hub.Endpoint, cfg.Hub.Token, env)
	if req.From != "" {
		p, err := peerOf(ctx, cfg, req.From, remote)
		if err != nil {
			return nil, nil, err
		}
		// The peer's downloads, served as the Hub serves files: the same
		// client, the same verification.
		hc = hub.New(strings.TrimRight(p.URL, "/")+"/api/hub", p.Token, hub.Env{})
	}
	boxes := []fit.Box{fit.FromStatus("this box", s.sched.Status())}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, name := range cfg.PeerNames() {
		p := cfg.Peers[name]
		if st, err := client.New(p.URL, p.Token).Status(qctx); err == nil {
			boxes = append(boxes, fit.FromStatus(name, st))
		} else {
			boxes = append(boxes, fit.Box{Name: name, Err: "not asked: " + err.Error()})
		}
	}
	dest := func(name, family string) string {
		if req.To == "hf-cache" {
			return env.Cache
		}
		return filepath.Join(cfg.Root, "models", family, name)
	}
	res, err := fit.Run(ctx, cfg, hc, fit.Request{Ref: ref, Engine: req.Engine, Context: req.Context, Concurrency: req.Concurrency,
		Name: req.Name, Select: hub.Options{Include: req.Include, Exclude: req.Exclude, Quant: req.Quant}}, boxes, dest)
	return res, hc, hubErr(err)
}

// peerOf is the peer a copy comes from: by name, or ("peer") the one
// whose address the request comes from.
func peerOf(ctx context.Context, cfg *config.Config, from, remote string) (*config.Peer, error) {
	if from != "peer" {
		if p := cfg.Peers[from]; p != nil {
			return p, nil
		}
		return nil, apierr.New(apierr.BadRequest, fmt.Sprintf("from: %q is not a peer of this gantry (peers: %v)", from, cfg.PeerNames()))
	}
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		ip = remote
	}
	for _, name := range cfg.PeerNames() {
		p := cfg.Peers[name]
		u, err := url.Parse(p.URL)
		if err != nil {
			continue
		}
		addrs, _ := net.DefaultResolver.LookupHost(ctx, u.Hostname())
		if slices.Contains(addrs, ip) || u.Hostname() == ip {
			return p, nil
		}
	}
	return nil, apierr.New(apierr.BadRequest, fmt.Sprintf("the request comes from %s, which is none of this gantry's peers: add it under peers: (its url: on that address)", ip))
}

// hubErr gives a Hub refusal its status: the repository or revision not
// found 404, a gate or a refused token 403, no network 503.
func hubErr(err error) error {
	var he *hub.Error
	if !errors.As(err, &he) {
		return err
	}
	switch he.Kind {
	case hub.NotFound, hub.NoRevision, hub.NoFile:
		return apierr.New(apierr.HubNotFound, he.Error())
	case hub.Gated, hub.NoAccess, hub.BadToken:
		return apierr.New(apierr.HubRefused, he.Error())
	case hub.Offline, hub.Unreachable:
		return apierr.New(apierr.HubUnreachable, he.Error())
	}
	return apierr.New(apierr.HubError, he.Error())
}

// fit answers GET /api/models/fit?repo=org/name@rev[&engine=&context=
// &concurrency=&quant=&to=]: the fit of a Hub repository on this box
// and its peers, before any weight byte.
func (s *Server) fit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := fitRequest{Repo: q.Get("repo"), Engine: q.Get("engine"), Quant: q.Get("quant"), Name: q.Get("name"), To: q.Get("to"),
		Include: q["include"], Exclude: q["exclude"]}
	for k, set := range map[string]func(int64){"context": func(n int64) { req.Context = n }, "concurrency": func(n int64) { req.Concurrency = int(n) }} {
		if v := q.Get(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 0 {
				apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "bad_request", fmt.Sprintf("%s=%q is not a whole number", k, v))
				return
			}
			set(n)
		}
	}
	res, _, err := s.fitOf(r.Context(), req, r.RemoteAddr)
	if err != nil {
		apierr.WriteErr(w, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, res)
}

// get answers POST /api/models/get {"repo": "org/name@rev", …}: the
// repository is fitted, then downloaded by the daemon (one download per
// destination, whoever asks; it goes on if the asker leaves). The answer
// streams its events ("download" events as `gantry get --json` prints
// them, then "done"), or with "wait": false is 202 with where it goes.
// Progress is also on /api/events. A download holds no memory budget.
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	if s.downloads == nil {
		apierr.Write(w, http.StatusServiceUnavailable, "server_error", "downloads_off", "this gantry does not download")
		return
	}
	var req fitRequest
	if !readJSON(w, r, &req) {
		return
	}
	res, hc, err := s.fitOf(r.Context(), req, r.RemoteAddr)
	if err != nil {
		apierr.WriteErr(w, err)
		return
	}
	var layout fetch.Layout = &fetch.Folder{Path: res.Download.Dest}
	if req.To == "hf-cache" {
		layout = &fetch.HFCache{Cache: res.Download.Dest, Repo: res.Repo, Commit: res.Commit}
	}
	job := fetch.Job{Client: hc, Repo: res.Resolved, Files: res.Selection.Files, Quant: res.Quant, Layout: layout,
		Events: s.downloadEvents(res.Repo)}
	d, shared := s.downloads.Start(job)
	if req.Wait != nil && !*req.Wait {
		apierr.WriteJSON(w, http.StatusAccepted, map[string]any{"repo": res.Repo, "commit": res.Commit, "dest": layout.Dir(), "shared": shared})
		return
	}
	sse := newSSE(w)
	events := make(chan fetch.Event, 64)
	stop := d.Follow(func(e fetch.Event) {
		select {
		case events <- e:
		default: // a slow reader misses progress, not the end
		}
	})
	defer stop()
	for {
		select {
		case e := <-events:
			b, _ := json.Marshal(e)
			sse.send("download", string(b))
			sse.flush()
		case <-d.Done():
			dl, errText := d.Outcome()
			b, _ := json.Marshal(map[string]any{"repo": res.Repo, "commit": res.Commit, "dest": layout.Dir(), "shared": shared,
				"result": dl, "error": errText, "ok": errText == ""})
			sse.send("done", string(b))
			sse.flush()
			return
		case <-r.Context().Done():
			return
		}
	}
}

// downloadEvents turns a download's steps into events on /api/events (the
// dashboard's bars): its start, its progress at most every 500 ms, its end.
func (s *Server) downloadEvents(repo string) func(fetch.Event) {
	return func(e fetch.Event) {
		ev := status.Event{Kind: status.KindDownload, Model: repo, Time: time.Now()}
		pr := &status.Progress{Phase: "downloading", Fraction: -1, Percent: -1, Done: int(e.Done >> 20), Total: int(e.Total >> 20)}
		if e.Total > 0 {
			pr.Fraction = float64(e.Done) / float64(e.Total)
			pr.Percent = int(100 * pr.Fraction)
		}
		switch e.Type {
		case fetch.EventPlan:
			ev.Reason = "downloading: " + e.Msg
		case fetch.EventProgress:
			ev.Reason = fmt.Sprintf("downloading: %s of %s, %s/s", config.FormatBytes(e.Done), config.FormatBytes(e.Total), config.FormatBytes(int64(e.Rate)))
		case fetch.EventDone:
			pr.Phase, ev.Reason = "downloaded", "downloaded to "+e.Dest
		case fetch.EventError:
			pr.Phase, ev.Reason = "failed", "download failed: "+e.Msg
		default:
			return
		}
		ev.Progress = pr
		s.events.Publish(ev)
	}
}

// downloadList answers GET /api/downloads: the daemon's downloads, those
// running first, with their last event.
func (s *Server) downloadList(w http.ResponseWriter, r *http.Request) {
	if s.downloads == nil {
		apierr.WriteJSON(w, http.StatusOK, []any{})
		return
	}
	apierr.WriteJSON(w, http.StatusOK, s.downloads.List())
}

// Package client is the HTTP client of gantry's admin API, used by the CLI
// verbs (and tests) to talk to a local or remote `gantry serve`.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/status"
)

// Client talks to one gantry daemon.
type Client struct {
	base  string
	from  string // where the address came from, for errors
	token string
	hc    *http.Client
}

// New returns a client for the daemon at server (http://host:port) that
// sends token as a bearer token when it is not empty.
func New(server, token string) *Client {
	server = strings.TrimRight(server, "/")
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &Client{base: server, token: token, hc: &http.Client{}}
}

// Base is the daemon's URL.
func (c *Client) Base() string { return c.base }

// From records where the daemon's address came from ("--server",
// "GANTRY_SERVER", "listen: in FILE"…); every error of c names it with the
// address. It returns c.
func (c *Client) From(source string) *Client {
	c.from = source
	return c
}

// Source is where the daemon's address came from (see From).
func (c *Client) Source() string { return c.from }

// at is the daemon as errors name it: its address and where it came from.
func (c *Client) at() string {
	if c.from == "" {
		return c.base
	}
	return c.base + " (from " + c.from + ")"
}

// APIError is an error answer of the daemon.
type APIError struct {
	Status  int
	Type    string
	Code    string
	Message string
	// Server is the daemon that answered, with where its address came
	// from; Error names it.
	Server string
}

func (e *APIError) Error() string {
	if e.Server == "" {
		return e.Message
	}
	return e.Message + " [gantry at " + e.Server + "]"
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil || method != http.MethodGet {
		// gantry refuses state-changing admin requests without it (no web
		// page can send it cross-site without a CORS preflight).
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("cannot reach gantry at %s: connection refused — is `gantry serve` running there? (set --server or GANTRY_SERVER)", c.at())
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach gantry at %s: %w (set --server or GANTRY_SERVER)", c.at(), err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		ae := decodeError(resp)
		ae.Server = c.at()
		return nil, ae
	}
	return resp, nil
}

func decodeError(resp *http.Response) *APIError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	ae := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		ae.Message, ae.Type = e.Error.Message, e.Error.Type
		ae.Code = fmt.Sprint(e.Error.Code)
	} else {
		ae.Message = strings.TrimSpace(resp.Status + " " + string(b))
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		ae.Message = "gantry refused the token (" + ae.Message + "): pass the right one with --token or GANTRY_TOKEN"
	case http.StatusForbidden:
		if ae.Code == "admin_key_required" {
			ae.Message = "gantry refused this token for the admin API (" + ae.Message + "): use an admin key"
		}
	}
	return ae
}

func (c *Client) getJSON(ctx context.Context, method, path string, out any) error {
	resp, err := c.do(ctx, method, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("gantry at %s answered %s with something that is not its JSON: %w", c.at(), path, err)
	}
	return nil
}

// Status returns /api/status.
func (c *Client) Status(ctx context.Context) (status.Status, error) {
	var s status.Status
	err := c.getJSON(ctx, http.MethodGet, "/api/status", &s)
	return s, err
}

// StatusAll is Status with the peers' models (/api/status?peers=1).
func (c *Client) StatusAll(ctx context.Context) (status.Status, error) {
	var s status.Status
	err := c.getJSON(ctx, http.MethodGet, "/api/status?peers=1", &s)
	return s, err
}

// Model returns one model's status.
func (c *Client) Model(ctx context.Context, name string) (status.ModelStatus, error) {
	s, err := c.Status(ctx)
	if err != nil {
		return status.ModelStatus{}, err
	}
	for _, m := range s.Models {
		if m.Name == name {
			return m, nil
		}
		for _, a := range m.Aliases {
			if a == name {
				return m, nil
			}
		}
	}
	return status.ModelStatus{}, fmt.Errorf("unknown model %q [gantry at %s]", name, c.at())
}

// Start asks the daemon to start a model and returns at once; poll Model
// for progress.
func (c *Client) Start(ctx context.Context, name string) (status.ModelStatus, error) {
	var m status.ModelStatus
	err := c.getJSON(ctx, http.MethodPost, "/api/models/"+url.PathEscape(name)+"/start", &m)
	return m, err
}

// Stop stops a model and returns when it has stopped.
func (c *Client) Stop(ctx context.Context, name string) (status.ModelStatus, error) {
	var m status.ModelStatus
	err := c.getJSON(ctx, http.MethodPost, "/api/models/"+url.PathEscape(name)+"/stop", &m)
	return m, err
}

// Logs returns the last tail lines of a model's log.
func (c *Client) Logs(ctx context.Context, name string, tail int) ([]string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/logs/"+url.PathEscape(name)+"?tail="+strconv.Itoa(tail), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// FollowLogs calls fn with the last tail lines and then each new line until
// ctx is done or the daemon goes away.
func (c *Client) FollowLogs(ctx context.Context, name string, tail int, fn func(string)) error {
	resp, err := c.do(ctx, http.MethodGet, "/api/logs/"+url.PathEscape(name)+"?follow=1&tail="+strconv.Itoa(tail), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return ReadSSE(resp.Body, func(event, data string) { fn(data) })
}

// ReadSSE reads server-sent events from r and calls fn for each.
func ReadSSE(r io.Reader, fn func(event, data string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				fn(event, strings.Join(data, "\n"))
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimPrefix(line, "data:")
			data = append(data, strings.TrimPrefix(d, " "))
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, path, strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// Switch makes model the running member of slot; it returns when the model
// is ready.
func (c *Client) Switch(ctx context.Context, slot, model string) (status.ModelStatus, error) {
	var m status.ModelStatus
	err := c.postJSON(ctx, "/api/slots/"+url.PathEscape(slot)+"/switch", map[string]string{"model": model}, &m)
	return m, err
}

// ProfileInfo is the active profile and the configured ones.
type ProfileInfo struct {
	Active   string              `json:"active"`
	Profiles map[string][]string `json:"profiles"`
}

// Profile returns the active profile.
func (c *Client) Profile(ctx context.Context) (ProfileInfo, error) {
	var p ProfileInfo
	err := c.getJSON(ctx, http.MethodGet, "/api/profile", &p)
	return p, err
}

// SetProfile activates a profile ("" for none).
func (c *Client) SetProfile(ctx context.Context, name string) (ProfileInfo, error) {
	var p ProfileInfo
	err := c.postJSON(ctx, "/api/profile", map[string]string{"profile": name}, &p)
	return p, err
}

// Check runs the sanity checks (all: start on-demand models too).
func (c *Client) Check(ctx context.Context, all bool, out any) error {
	path := "/api/check"
	if all {
		path += "?all=1"
	}
	return c.getJSON(ctx, http.MethodPost, path, out)
}

// Events calls fn with each event (kind, JSON data) until ctx is done.
func (c *Client) Events(ctx context.Context, fn func(kind, data string)) error {
	resp, err := c.do(ctx, http.MethodGet, "/api/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return ReadSSE(resp.Body, fn)
}

// Post sends a JSON body to a gateway path and returns the open response
// (the caller reads and closes it). Errors come back as *APIError.
func (c *Client) Post(ctx context.Context, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, http.MethodPost, path, strings.NewReader(string(b)))
}

// Activity returns the activity log's newest records and totals; q holds
// model, since and limit.
func (c *Client) Activity(ctx context.Context, q url.Values) (activity.Result, error) {
	var res activity.Result
	err := c.getJSON(ctx, http.MethodGet, "/api/activity?"+q.Encode(), &res)
	return res, err
}

// Usage returns the activity log's totals by key, model or day since a
// time (GET /api/usage).
func (c *Client) Usage(ctx context.Context, by, since string) (activity.Usage, error) {
	var u activity.Usage
	err := c.getJSON(ctx, http.MethodGet, "/api/usage?"+url.Values{"by": {by}, "since": {since}}.Encode(), &u)
	return u, err
}

// FollowActivity calls fn with each new record (of model, "" all) until
// ctx is done or the daemon goes away.
func (c *Client) FollowActivity(ctx context.Context, model string, fn func(activity.Record)) error {
	q := url.Values{"follow": {"1"}}
	if model != "" {
		q.Set("model", model)
	}
	resp, err := c.do(ctx, http.MethodGet, "/api/activity?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return ReadSSE(resp.Body, func(event, data string) {
		var r activity.Record
		if event == "activity" && json.Unmarshal([]byte(data), &r) == nil {
			fn(r)
		}
	})
}

// Pull asks the daemon to pull the images of models (all docker-runtime
// models with all), calling progress with each step; it returns the
// results per image.
func (c *Client) Pull(ctx context.Context, models []string, all bool, progress func(status.PullProgress)) ([]status.PullResult, error) {
	body, _ := json.Marshal(map[string]any{"models": models, "all": all})
	resp, err := c.do(ctx, http.MethodPost, "/api/pull", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var done struct {
		Results []status.PullResult `json:"results"`
	}
	got := false
	err = ReadSSE(resp.Body, func(event, data string) {
		switch event {
		case "pull":
			var p status.PullProgress
			if json.Unmarshal([]byte(data), &p) == nil && progress != nil {
				progress(p)
			}
		case "done":
			got = json.Unmarshal([]byte(data), &done) == nil
		}
	})
	if err == nil && !got {
		err = fmt.Errorf("gantry at %s ended the pull without a result", c.at())
	}
	return done.Results, err
}

package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/apierr"
)

// SetActivity serves the activity log at GET /api/activity (nil: the log
// is off, and the route says so). Call before serving.
func (s *Server) SetActivity(a *activity.Store) { s.activity = a }

// activityLog answers GET /api/activity?model=&since=&limit=&follow=1:
// the newest records and per-model totals as JSON, or with follow=1 the
// new records as server-sent events ("activity").
func (s *Server) activityLog(w http.ResponseWriter, r *http.Request) {
	if !s.activityOn(w, "the activity log is off") {
		return
	}
	q := r.URL.Query()
	f := activity.Filter{Model: q.Get("model")}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, time.Now())
		if err != nil {
			apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "bad_since", err.Error())
			return
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "bad_limit", "limit must be a number from 1 to 100000")
			return
		}
		f.Limit = n
	}
	if q.Get("follow") == "1" {
		s.followActivity(w, r, f.Model)
		return
	}
	res, err := s.activity.Query(f)
	if err != nil {
		apierr.Write(w, http.StatusInternalServerError, "server_error", "activity_read", "could not read the activity log: "+err.Error())
		return
	}
	apierr.WriteJSON(w, http.StatusOK, res)
}

// usage answers GET /api/usage?by=key|model|day&since=: the activity
// log's requests, tokens in and out and engine-seconds held, totalled by
// key (default), model or day since a time (default 7d).
func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	if !s.activityOn(w, "usage is read from the activity log, which is off") {
		return
	}
	q := r.URL.Query()
	by, since := q.Get("by"), q.Get("since")
	if by == "" {
		by = activity.ByKey
	}
	if since == "" {
		since = "7d"
	}
	t, err := parseSince(since, time.Now())
	if err != nil {
		apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "bad_since", err.Error())
		return
	}
	u, err := s.activity.Usage(by, t)
	if errors.Is(err, activity.ErrGrouping) {
		apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "bad_by", err.Error())
		return
	}
	if err != nil {
		apierr.Write(w, http.StatusInternalServerError, "server_error", "activity_read", "could not read the activity log: "+err.Error())
		return
	}
	apierr.WriteJSON(w, http.StatusOK, u)
}

// activityOn answers 404 saying what is off when the activity log is.
func (s *Server) activityOn(w http.ResponseWriter, what string) bool {
	if s.activity == nil {
		apierr.Write(w, http.StatusNotFound, "invalid_request_error", "activity_off",
			what+" (activity.keep_days or keep_rows is 0 in the config)")
	}
	return s.activity != nil
}

// parseSince reads since= as a time (RFC 3339, or a date: midnight,
// local time) or as a duration back from now ("90m", "24h", "7d").
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, now.Location()); err == nil {
		return t, nil
	}
	return time.Time{}, &sinceError{v}
}

type sinceError struct{ v string }

func (e *sinceError) Error() string {
	return "since=" + strings.TrimSpace(e.v) + ": write a duration back from now (90m, 24h, 7d), a date (2026-11-30) or an RFC 3339 time"
}

func (s *Server) followActivity(w http.ResponseWriter, r *http.Request, model string) {
	ch, stop := s.activity.Subscribe()
	defer stop()
	follow(w, r, "gantry activity", ch, func(rec activity.Record) (string, bool) {
		return "activity", model == "" || rec.Model == model || rec.Served == model
	})
}

package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
)

// pull answers POST /api/pull {"models": [...]} or {"all": true}: the
// images of those docker-runtime models are pulled one after another, and
// the answer streams their progress as server-sent "pull" events (layers
// summed into bytes done and total), then one "done" event with every
// image's result. Pull begin and end are also events on /api/events.
func (s *Server) pull(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Models []string `json:"models"`
		All    bool     `json:"all"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	cfg := s.sched.Config()
	images := map[string][]string{}
	var order []string
	add := func(m *config.Model) {
		if _, ok := images[m.Image]; !ok {
			order = append(order, m.Image)
		}
		images[m.Image] = append(images[m.Image], m.Name)
	}
	switch {
	case req.All:
		for _, n := range cfg.ModelNames() {
			if m := cfg.Models[n]; m.Runtime == config.RuntimeDocker {
				add(m)
			}
		}
	case len(req.Models) == 0:
		apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "nothing_to_pull", `name models ({"models": ["qwen"]}) or ask for {"all": true}`)
		return
	default:
		for _, name := range req.Models {
			m := cfg.Resolve(name)
			if m == nil {
				apierr.WriteErr(w, fmt.Errorf("%w: %s is not configured here; known models: %s", sched.ErrUnknownModel, sched.Quote(name), s.sched.KnownNames()))
				return
			}
			if m.Runtime != config.RuntimeDocker {
				apierr.Write(w, http.StatusBadRequest, "invalid_request_error", "not_a_container",
					fmt.Sprintf("%s runs natively (runtime: %s): it has no image to pull", m.Name, m.Runtime))
				return
			}
			add(m)
		}
	}
	d := s.sched.Docker()
	if d == nil {
		apierr.Write(w, http.StatusServiceUnavailable, "server_error", "docker_unavailable", container.ErrDaemon.Error())
		return
	}
	sse := newSSE(w)
	var results []status.PullResult
	for _, image := range order {
		res := status.PullResult{Image: image, Models: images[image]}
		s.events.Publish(status.Event{Kind: status.KindPull, Model: image, Reason: "pulling", Time: time.Now()})
		var last time.Time
		var final status.PullProgress
		err := d.Pull(r.Context(), image, func(p status.PullProgress) {
			final = p
			if p.Finished || time.Since(last) >= 200*time.Millisecond {
				last = time.Now()
				b, _ := json.Marshal(p)
				sse.send("pull", string(b))
				sse.flush()
				s.events.Publish(pullEvent(image, p))
			}
		})
		if err != nil {
			res.Error = err.Error()
		} else {
			res.OK, res.Bytes = true, final.Total
		}
		reason := fmt.Sprintf("pulled: %s", config.FormatBytes(res.Bytes))
		if err != nil {
			reason = "pull failed: " + err.Error()
		}
		s.events.Publish(status.Event{Kind: status.KindPull, Model: image, Reason: reason, Time: time.Now(),
			Progress: &status.Progress{Phase: "pulled", Fraction: 1, Done: int(res.Bytes >> 20), Total: int(res.Bytes >> 20), Percent: 100}})
		results = append(results, res)
		if r.Context().Err() != nil {
			return
		}
	}
	b, _ := json.Marshal(map[string]any{"results": results, "ok": !slices.ContainsFunc(results, func(p status.PullResult) bool { return !p.OK })})
	sse.send("done", string(b))
	sse.flush()
}

// pullEvent is a pull's progress on the event stream, for the dashboard:
// the layers' bytes summed, Done and Total in MiB.
func pullEvent(image string, p status.PullProgress) status.Event {
	pr := &status.Progress{Phase: "pulling", Fraction: -1, Percent: -1, Done: int(p.Done >> 20), Total: int(p.Total >> 20)}
	if p.Total > 0 {
		pr.Fraction = float64(p.Done) / float64(p.Total)
		pr.Percent = int(100 * pr.Fraction)
	}
	return status.Event{Kind: status.KindPull, Model: image, Time: time.Now(), Progress: pr,
		Reason: fmt.Sprintf("pulling: %s of %s", config.FormatBytes(p.Done), config.FormatBytes(p.Total))}
}

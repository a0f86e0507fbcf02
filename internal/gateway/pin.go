package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// Pin is what one of gantry's own addresses serves: one model
// (models.<name>.listen) or one slot (slots.<slot>.listen). Whatever a
// request there names goes to the model; in a slot, a member's name
// switches the slot to it and any other name (or none) goes to the
// member the slot has (see sched.SlotTarget).
type Pin struct {
	Model, Slot string
}

type pinKey struct{}

// Pinned makes h serve p: every request through it carries the pin.
func Pinned(p Pin, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), pinKey{}, p)))
	})
}

func pinOf(r *http.Request) (Pin, bool) {
	p, ok := r.Context().Value(pinKey{}).(Pin)
	return p, ok
}

// pinned is the name a request on a pinned address goes on with, given
// the name it asked for ("" when none): the name itself when it is the
// pinned model's (or a slot member's) name, alias or preset; otherwise the
// pinned model, or the member the slot has.
func (g *Gateway) pinned(p Pin, name string) string {
	target, _ := g.resolvePreset(name)
	if m := g.sched.Config().Resolve(target); m != nil && (m.Name == p.Model || (p.Slot != "" && m.Slot == p.Slot)) {
		return name
	}
	if p.Model != "" {
		return p.Model
	}
	return g.sched.SlotTarget(p.Slot)
}

// pinBody rewrites the body of a request on a pinned address so that its
// "model" names the model it goes to (inserted when the body has none).
// Off a pinned address, or when the body is not a JSON object, it returns
// the body unchanged.
func (g *Gateway) pinBody(r *http.Request, body []byte) []byte {
	p, ok := pinOf(r)
	if !ok {
		return body
	}
	f, err := topFields(body)
	if err != nil {
		return body // the parser's own error says what is wrong
	}
	target := g.pinned(p, f.model)
	if f.found {
		if f.model == target {
			return body
		}
		return ReplaceModel(body, f.start, f.end, target)
	}
	return insertModel(body, target)
}

// insertModel adds "model" as the first member of the JSON object body.
func insertModel(body []byte, name string) []byte {
	i := 0
	for i < len(body) && body[i] != '{' {
		i++
	}
	q, _ := json.Marshal(name)
	out := make([]byte, 0, len(body)+len(q)+10)
	out = append(out, body[:i+1]...)
	out = append(out, `"model":`...)
	out = append(out, q...)
	rest := body[i+1:]
	j := 0
	for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t' || rest[j] == '\n' || rest[j] == '\r') {
		j++
	}
	if j < len(rest) && rest[j] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// pinnedList keeps, on a pinned address, the models list to what it
// serves: the model, or the slot's members.
func pinnedList(cfg *config.Config, p Pin, data []modelEntry) []modelEntry {
	keep := data[:0]
	for _, e := range data {
		m := cfg.Resolve(e.ID)
		if m == nil && e.Gantry.PresetOf != "" {
			m = cfg.Resolve(e.Gantry.PresetOf)
		}
		if m != nil && (m.Name == p.Model || (p.Slot != "" && m.Slot == p.Slot)) {
			keep = append(keep, e)
		}
	}
	return keep
}

// DoorHealth answers GET /health and /healthz on a model's or slot's own
// address as that model's engine answers its /health — what the seed's
// `curl -sf :30000/health` and its sglang_health.sh check: 200 with an
// empty body when the model is ready (vLLM's health(): Response(
// status_code=200), vllm/entrypoints/api_server.py; SGLang's /health,
// python/sglang/srt/entrypoints/http_server.py), else 503 with the state
// in the body. On a slot's address the model is the member the slot has
// (or its default). It starts nothing: a health check is not a request.
// /healthz answers the same with a JSON body either way.
func (g *Gateway) DoorHealth(w http.ResponseWriter, r *http.Request) {
	p, _ := pinOf(r)
	name := p.Model
	if name == "" {
		name = g.sched.SlotTarget(p.Slot)
	}
	state, ok := g.sched.StateOf(name)
	if !ok {
		state = "empty" // a slot with no member to hold
	}
	body := map[string]string{"model": name, "state": string(state)}
	if p.Slot != "" {
		body["slot"] = p.Slot
	}
	w.Header().Set("Cache-Control", "no-store")
	if state == status.Ready {
		if r.URL.Path == "/healthz" {
			body["status"] = "ok"
			apierr.WriteJSON(w, http.StatusOK, body)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	body["status"] = string(state)
	apierr.WriteJSON(w, http.StatusServiceUnavailable, body)
}

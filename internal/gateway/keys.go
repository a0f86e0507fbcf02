package gateway

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/limits"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/translate"
)

// A request carries the key it was admitted with (auth.From); an open
// gateway's requests carry none (nil: every model, no limits, interactive).

// priorityOf is how a request waits in the scheduler: its key's priority,
// or the one its X-Gantry-Priority header may set (auth.Key.BatchFor).
func priorityOf(r *http.Request) sched.Priority {
	if auth.From(r.Context()).BatchFor(r) {
		return sched.Batch
	}
	return sched.Interactive
}

// sees reports whether key may use name: a model, an alias, a preset or a
// peer's model. A key sees a name its models match, and the aliases and
// presets of a model they match, here or on a peer. The one rule of what
// a key sees: /v1/models and Ollama's lists ask it too.
func (g *Gateway) sees(key *auth.Key, name string) bool {
	if !key.Restricted() || key.Sees(name) {
		return true
	}
	cfg := g.sched.Config()
	target := name
	if p := cfg.Presets[name]; p != nil && cfg.Resolve(name) == nil {
		target = p.Model
	}
	if m := cfg.Resolve(target); m != nil {
		return key.Sees(m.Name)
	}
	if g.peers.Empty() {
		return false
	}
	for _, p := range g.peers.Holders(name) {
		if a := p.AliasOf(name); a != "" && key.Sees(a) {
			return true
		}
	}
	return false
}

// known reports whether name is served here or by a peer.
func (g *Gateway) known(name string) bool {
	cfg := g.sched.Config()
	return cfg.Resolve(name) != nil || cfg.Presets[name] != nil || !g.peers.Empty() && len(g.peers.Holders(name)) > 0
}

// knownNames lists the names a request's key may use, for messages: a
// restricted key never learns of the others.
func (g *Gateway) knownNames(r *http.Request) string {
	key := auth.From(r.Context())
	if !key.Restricted() {
		return g.sched.KnownNames()
	}
	var seen []string
	for _, e := range g.modelList(r) {
		seen = append(seen, e.ID)
	}
	if len(seen) == 0 {
		return "none configured"
	}
	return strings.Join(seen, ", ")
}

// unknownFor is the error for a name a restricted key may not use: the
// same words as for a name that exists nowhere, the key's names listed.
func (g *Gateway) unknownFor(r *http.Request, name string) error {
	return fmt.Errorf("%w: %s is not configured here%s; known models: %s", sched.ErrUnknownModel, sched.Quote(name), g.didYouMean(r, name), g.knownNames(r))
}

// didYouMean is ", did you mean X?" for the name closest to name among
// those the request's key may use, "" when none is close.
func (g *Gateway) didYouMean(r *http.Request, name string) string {
	key := auth.From(r.Context())
	if !key.Restricted() {
		return g.sched.DidYouMean(name)
	}
	var seen []string
	for _, e := range g.modelList(r) {
		seen = append(seen, e.ID)
	}
	if c := config.Closest(name, seen); c != "" {
		return fmt.Sprintf(", did you mean %s?", sched.Quote(c))
	}
	return ""
}

// admit checks a request for name against its key before anything is done
// for it: a name the key does not see (or that exists nowhere) is answered
// as an unknown model, listing only the key's names; a key over one of its
// limits gets 429 in the route's shape (shape nil: OpenAI's) with the
// headers the official SDKs back off by. ok false: answered. Admitted, the
// request counts against its key's limits until endAdmitted.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, name string,
	shape func(http.ResponseWriter, int, string, string)) (key *auth.Key, ok bool) {
	key = auth.From(r.Context())
	if key == nil {
		return nil, true
	}
	if key.Restricted() && (!g.sees(key, name) || !g.known(name)) {
		writeShaped(w, shape, g.unknownFor(r, name))
		return nil, false
	}
	if key.Limit == nil {
		return nil, true
	}
	st := key.Limit.Admit(time.Now())
	l := key.Limit.Limits()
	if st.Limit != "" {
		limitHeaders(w.Header(), r, l, st)
		rateLimited(w, r, key, st, shape)
		return nil, false
	}
	// An admitted request carries the headers once a tenth of a bucket is
	// left, so a client can slow down before it is refused; until then
	// they would cost every request (a dozen allocations, 200 bytes).
	if l.RPM > 0 && st.RequestsLeft*10 < l.RPM || l.TPM > 0 && st.TokensLeft*10 < l.TPM {
		limitHeaders(w.Header(), r, l, st)
	}
	return key, true
}

// endAdmitted ends a request admit took in (key nil: nothing to end).
func endAdmitted(key *auth.Key) {
	if key != nil {
		key.Limit.Done()
	}
}

// anthropicRoute reports whether a path is Anthropic's API, whose clients
// read anthropic-ratelimit-* headers and its own error shape.
func anthropicRoute(path string) bool { return strings.HasPrefix(path, "/v1/messages") }

// limitHeaders sets where the key stands: OpenAI's x-ratelimit-* headers
// (github.com/openai/openai-python reads retry-after-ms and retry-after;
// the names and their "1s"/"6m0s" resets are OpenAI's rate-limit guide's),
// or on Anthropic's routes its anthropic-ratelimit-* ones, whose resets
// are RFC 3339 times (docs.anthropic.com, "Rate limits": response headers).
func limitHeaders(h http.Header, r *http.Request, l limits.Limits, st limits.State) {
	if anthropicRoute(r.URL.Path) {
		now := time.Now().UTC()
		if l.RPM > 0 {
			h["Anthropic-Ratelimit-Requests-Limit"] = []string{strconv.Itoa(l.RPM)}
			h["Anthropic-Ratelimit-Requests-Remaining"] = []string{strconv.Itoa(st.RequestsLeft)}
			h["Anthropic-Ratelimit-Requests-Reset"] = []string{now.Add(st.RequestsReset).Format(time.RFC3339)}
		}
		if l.TPM > 0 {
			h["Anthropic-Ratelimit-Tokens-Limit"] = []string{strconv.Itoa(l.TPM)}
			h["Anthropic-Ratelimit-Tokens-Remaining"] = []string{strconv.Itoa(st.TokensLeft)}
			h["Anthropic-Ratelimit-Tokens-Reset"] = []string{now.Add(st.TokensReset).Format(time.RFC3339)}
		}
		return
	}
	if l.RPM > 0 {
		h["X-Ratelimit-Limit-Requests"] = []string{strconv.Itoa(l.RPM)}
		h["X-Ratelimit-Remaining-Requests"] = []string{strconv.Itoa(st.RequestsLeft)}
		h["X-Ratelimit-Reset-Requests"] = []string{resetText(st.RequestsReset)}
	}
	if l.TPM > 0 {
		h["X-Ratelimit-Limit-Tokens"] = []string{strconv.Itoa(l.TPM)}
		h["X-Ratelimit-Remaining-Tokens"] = []string{strconv.Itoa(st.TokensLeft)}
		h["X-Ratelimit-Reset-Tokens"] = []string{resetText(st.TokensReset)}
	}
}

// resetText is a reset time as OpenAI writes it ("12ms", "1s", "6m0s"),
// rounded up: never sooner than Retry-After says.
func resetText(d time.Duration) string {
	if d > time.Second {
		return ((d + time.Second - 1) / time.Second * time.Second).String()
	}
	return ((d + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String()
}

// rateLimited answers a request a limit refused: 429, Retry-After in whole
// seconds (rounded up, as RFC 9110 wants) and retry-after-ms (which the
// official SDKs prefer), in the route's error shape: OpenAI's carries the
// limit in type and rate_limit_exceeded in code, as OpenAI's own 429s do.
func rateLimited(w http.ResponseWriter, r *http.Request, key *auth.Key, st limits.State,
	shape func(http.ResponseWriter, int, string, string)) {
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(st.RetryAfter.Seconds()))))
	h.Set("Retry-After-Ms", strconv.FormatInt(st.RetryAfter.Milliseconds()+1, 10))
	l := key.Limit.Limits()
	var msg string
	switch st.Limit {
	case limits.Tokens:
		msg = fmt.Sprintf("Rate limit reached for key %s on tokens per min (TPM): Limit %d, Used %d. Please try again in %s.",
			key.Name, l.TPM, st.Used, resetText(st.RetryAfter))
	case limits.Concurrency:
		msg = fmt.Sprintf("Rate limit reached for key %s on requests at once: Limit %d, in flight %d. Please try again when one has ended.",
			key.Name, l.Concurrency, st.Used)
	default:
		msg = fmt.Sprintf("Rate limit reached for key %s on requests per min (RPM): Limit %d, Used %d, Requested 1. Please try again in %s.",
			key.Name, l.RPM, st.Used, resetText(st.RetryAfter))
	}
	switch {
	case anthropicRoute(r.URL.Path):
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write(translate.AnthropicError(http.StatusTooManyRequests, msg)) //nolint:errcheck // client gone
	case shape != nil && strings.HasPrefix(r.URL.Path, "/api/"): // Ollama's API
		shape(w, http.StatusTooManyRequests, "rate_limit_exceeded", msg)
	default:
		typ := st.Limit
		if typ == limits.Concurrency {
			typ = limits.Requests
		}
		apierr.WriteJSON(w, http.StatusTooManyRequests, rateLimitBody{Error: rateLimitDetail{
			Message: msg, Type: typ, Code: "rate_limit_exceeded"}})
	}
}

// rateLimitBody is OpenAI's 429: {"error":{"message","type","param","code"}}.
type rateLimitBody struct {
	Error rateLimitDetail `json:"error"`
}

type rateLimitDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// visible keeps the /v1/models entries a request's key sees (sees: an
// alias's and a preset's model decide for them).
func (g *Gateway) visible(key *auth.Key, data []modelEntry) []modelEntry {
	if !key.Restricted() {
		return data
	}
	return slices.DeleteFunc(data, func(e modelEntry) bool { return !g.sees(key, e.ID) })
}

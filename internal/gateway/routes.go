package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gantryhq/gantry/internal/apierr"
)

// Routes are the OpenAI-compatible paths the gateway relays by the model
// their JSON body names, unchanged.
var Routes = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank", "/rerank",
	"/v1/audio/speech", "/v1/images/generations"}

// UploadRoutes take multipart/form-data uploads whose model is a form field.
var UploadRoutes = []string{"/v1/audio/transcriptions", "/v1/audio/translations", "/v1/images/edits"}

// Wraps are the auth middlewares the gateway's routes need: the gateway's
// keys (with the error shape of the route's clients) and the admin keys.
type Wraps struct {
	Gateway          func(http.Handler) http.Handler
	GatewayAnthropic func(http.Handler) http.Handler
	Admin            func(http.Handler) http.Handler
}

// Register adds the gateway's routes to mux, each wrapped by its auth, and
// a catch-all that answers every unknown route or method in JSON.
func (g *Gateway) Register(mux *http.ServeMux, wrap Wraps) {
	if wrap.GatewayAnthropic == nil {
		wrap.GatewayAnthropic = wrap.Gateway
	}
	if wrap.Admin == nil {
		wrap.Admin = wrap.Gateway
	}
	mux.Handle("GET /v1/models", wrap.Gateway(http.HandlerFunc(g.models)))
	mux.Handle("GET /v1/models/{id}", wrap.Gateway(http.HandlerFunc(g.model)))
	for _, p := range Routes {
		mux.Handle("POST "+p, wrap.Gateway(http.HandlerFunc(g.relay)))
	}
	for _, p := range UploadRoutes {
		mux.Handle("POST "+p, wrap.Gateway(http.HandlerFunc(g.upload)))
	}
	mux.Handle("POST /v1/messages", wrap.GatewayAnthropic(g.translated(parseMessages, anthropicError)))
	mux.Handle("POST /v1/messages/count_tokens", wrap.GatewayAnthropic(g.translated(parseCountTokens, anthropicError)))
	mux.Handle("POST /v1/responses", wrap.Gateway(g.translated(parseResponses, openAIError)))
	mux.Handle("/upstream/{model}/{path...}", wrap.Admin(http.HandlerFunc(g.upstreamRelay)))
	mux.Handle("/", g.unknownRoute(mux))
}

// served lists the routes the gateway answers, for error messages.
func served() []string {
	out := []string{"GET /v1/models", "GET /v1/models/{id}"}
	for _, p := range append(append(slices.Clone(Routes), UploadRoutes...), "/v1/messages", "/v1/messages/count_tokens", "/v1/responses") {
		out = append(out, "POST "+p)
	}
	return append(out, "/upstream/{model}/{path} (admin key)")
}

// unknownRoute answers what no route takes, in the OpenAI shape (the
// Anthropic one under /v1/messages): 405 naming the methods a known path
// takes, 404 naming the routes — and, for a client whose base URL lacks
// /v1, the fix.
func (g *Gateway) unknownRoute(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write := openAIError
		if strings.HasPrefix(r.URL.Path, "/v1/messages") {
			write = anthropicError
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if m == r.Method {
				continue
			}
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			write(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s takes %s, not %s", quote(r.URL.Path), strings.Join(allow, " or "), r.Method))
			return
		}
		msg := fmt.Sprintf("gantry has no route %s %s", r.Method, quote(r.URL.Path))
		if !strings.HasPrefix(r.URL.Path, "/v1/") && !strings.HasPrefix(r.URL.Path, "/api/") {
			probe := r.Clone(r.Context())
			probe.URL.Path = "/v1" + r.URL.Path
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
				write(w, http.StatusNotFound, "route_not_found", fmt.Sprintf(
					"%s; did you mean /v1%s? Set the client's base URL to http://%s/v1 (with /v1)", msg, r.URL.Path, r.Host))
				return
			}
		}
		write(w, http.StatusNotFound, "route_not_found", msg+"; it serves "+strings.Join(served(), ", "))
	})
}

// quote is a client's text as a message shows it: cut, control characters
// replaced.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// model answers GET /v1/models/{id}: a model, an alias or a preset.
func (g *Gateway) model(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, e := range g.modelList(r) {
		if e.ID == id {
			apierr.WriteJSON(w, http.StatusOK, e)
			return
		}
	}
	openAIError(w, http.StatusNotFound, "model_not_found",
		fmt.Sprintf("the model %s does not exist here%s; known models: %s", quote(id), g.didYouMean(r, id), g.knownNames(r)))
}

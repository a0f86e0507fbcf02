package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/translate"
)

// OllamaVersion is the Ollama release whose API the Ollama listener
// answers as; clients check it for features.
const OllamaVersion = "0.12.0"

// ollamaError writes an error as Ollama's clients read them.
func ollamaError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(translate.OllamaError(msg)) //nolint:errcheck // client gone
}

// OllamaShape is ollamaError in apierr's writer shape, for auth.
func OllamaShape(w http.ResponseWriter, status int, typ, code, msg string) {
	ollamaError(w, status, code, msg)
}

// RegisterOllama adds Ollama's API (ollama_api: in the config) for every
// gantry model, whatever its engine: the routes clients that speak only
// Ollama use, beside the gateway's own /v1 routes (Ollama serves those
// too). Models are gantry's to manage: pull, push, create, copy and delete
// answer so.
func (g *Gateway) RegisterOllama(mux *http.ServeMux, wrap Wraps) {
	w := wrap.Gateway
	running := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Ollama is running") })
	mux.Handle("GET /{$}", running)
	mux.Handle("HEAD /{$}", running)
	mux.Handle("GET /api/version", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"version": OllamaVersion})
	}))
	mux.Handle("GET /api/tags", w(http.HandlerFunc(g.ollamaTags)))
	mux.Handle("GET /api/ps", w(http.HandlerFunc(g.ollamaPS)))
	mux.Handle("POST /api/show", w(http.HandlerFunc(g.ollamaShow)))
	mux.Handle("POST /api/chat", w(g.translated(g.parseOllama(false), ollamaError)))
	mux.Handle("POST /api/generate", w(g.translated(g.parseOllama(true), ollamaError)))
	mux.Handle("POST /api/embed", w(g.translated(parseOllamaEmbed(false), ollamaError)))
	mux.Handle("POST /api/embeddings", w(g.translated(parseOllamaEmbed(true), ollamaError)))
	for p := range managedPaths {
		mux.Handle(p, w(managedRefusal(p)))
	}
	g.Register(mux, wrap)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v) //nolint:errcheck // client gone
}

// parseOllama reads /api/chat (generate false) or /api/generate. A
// request without input loads the model (and, with keep_alive 0, unloads
// it), as in Ollama; keep_alive 0 on any request stops the model when the
// request is done. Other keep_alive values leave idling to gantry's
// idle_timeout.
func (g *Gateway) parseOllama(generate bool) func([]byte) (*call, error) {
	return func(body []byte) (*call, error) {
		req, err := translate.ParseOllama(body, generate)
		if err != nil {
			return nil, err
		}
		c := &call{model: req.Model, stream: req.Streams(), path: req.Path(),
			body: func(served string) (any, error) { return req.ToOpenAI(served) },
			answer: func(b []byte, asked string, took time.Duration) ([]byte, error) {
				return req.FromOpenAI(b, asked, took)
			},
			newStream:  func(asked string) translate.Stream { return req.NewStream(asked) },
			streamType: "application/x-ndjson"}
		if keep, set, _ := req.KeepAliveFor(); set && keep == 0 {
			c.after = g.stopWhenIdle
		}
		if req.Empty() {
			c.empty = func(w http.ResponseWriter, lease *sched.Lease) {
				d := map[string]any{"model": req.Model, "created_at": time.Now().UTC().Format(time.RFC3339Nano), "done": true, "done_reason": "load"}
				if c.after != nil {
					d["done_reason"] = "unload"
				}
				if generate {
					d["response"] = ""
				} else {
					d["message"] = map[string]string{"role": "assistant", "content": ""}
				}
				writeJSON(w, d)
			}
		}
		return c, nil
	}
}

func parseOllamaEmbed(legacy bool) func([]byte) (*call, error) {
	return func(body []byte) (*call, error) {
		req, err := translate.ParseOllamaEmbed(body)
		if err != nil {
			return nil, err
		}
		return &call{model: req.Model, path: "/v1/embeddings",
			body: func(served string) (any, error) { return req.ToOpenAI(served) },
			answer: func(b []byte, asked string, took time.Duration) ([]byte, error) {
				return req.FromOpenAI(b, asked, took, legacy)
			}}, nil
	}
}

// stopWhenIdle stops a model once nothing is in flight (keep_alive: 0).
func (g *Gateway) stopWhenIdle(model string) {
	if m := g.sched.Status().Model(model); m.Inflight == 0 && m.Queued == 0 && !m.AlwaysOn {
		go g.sched.Stop(context.Background(), model) //nolint:errcheck // shows in the status
	}
}

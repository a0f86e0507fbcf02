package gateway

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/translate"
)

// openAIError writes an error in OpenAI's shape (the Responses API's too).
func openAIError(w http.ResponseWriter, status int, code, msg string) {
	apierr.Write(w, status, openAIType(status), code, msg)
}

func openAIType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status < 500:
		return "invalid_request_error"
	}
	return "server_error"
}

// anthropicError writes an error as Anthropic's clients read them.
func anthropicError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(translate.AnthropicError(status, msg)) //nolint:errcheck // client gone
}

// AnthropicShape is anthropicError in apierr's writer shape, for the auth
// middleware of the Messages routes.
func AnthropicShape(w http.ResponseWriter, status int, typ, code, msg string) {
	anthropicError(w, status, code, msg)
}

// parseMessages reads an Anthropic Messages request: engines that serve
// /v1/messages themselves (vLLM since 0.11, llama-server since its
// Anthropic support, Ollama since 0.14) get it unchanged, the rest its
// translation to chat completions.
func parseMessages(body []byte) (*call, error) {
	req, err := translate.ParseMessages(body)
	if err != nil {
		return nil, err
	}
	return &call{model: req.Model, stream: req.Stream, native: "/v1/messages", nativeBody: body,
		path:       "/v1/chat/completions",
		body:       func(served string) (any, error) { return req.ToChat(served) },
		answer:     func(b []byte, asked string, _ time.Duration) ([]byte, error) { return req.FromChat(b, asked) },
		newStream:  func(asked string) translate.Stream { return req.NewStream(asked) },
		streamType: "text/event-stream"}, nil
}

// parseResponses reads an OpenAI Responses request, passed through to
// engines that serve /v1/responses (vLLM), translated for the rest.
func parseResponses(body []byte) (*call, error) {
	req, err := translate.ParseResponses(body)
	if err != nil {
		return nil, err
	}
	return &call{model: req.Model, stream: req.Stream, native: "/v1/responses", nativeBody: body,
		path:       "/v1/chat/completions",
		body:       func(served string) (any, error) { return req.ToChat(served) },
		answer:     func(b []byte, asked string, _ time.Duration) ([]byte, error) { return req.FromChat(b, asked) },
		newStream:  func(asked string) translate.Stream { return req.NewStream(asked) },
		streamType: "text/event-stream"}, nil
}

// countTokens answers /v1/messages/count_tokens: natively where the engine
// serves it, else through the engine's /tokenize (vLLM's takes the chat's
// messages and applies the model's template). An engine that can do
// neither cannot count: 404 saying so.
func parseCountTokens(body []byte) (*call, error) {
	var probe struct {
		MaxTokens *int `json:"max_tokens"`
	}
	json.Unmarshal(body, &probe) //nolint:errcheck // ParseMessages reports errors
	if probe.MaxTokens == nil {
		// count_tokens takes no max_tokens; the parser wants one.
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			m["max_tokens"] = json.RawMessage("1")
			body, _ = json.Marshal(m)
		}
	}
	req, err := translate.ParseMessages(body)
	if err != nil {
		return nil, err
	}
	return &call{model: req.Model, native: "/v1/messages/count_tokens", nativeBody: body,
		path:      "/tokenize",
		notServed: "cannot count tokens: its engine serves neither /v1/messages/count_tokens nor /tokenize",
		body: func(served string) (any, error) {
			c, err := req.ToChat(served)
			if err != nil {
				return nil, err
			}
			return map[string]any{"model": served, "messages": c.Messages, "add_generation_prompt": true}, nil
		},
		answer: func(b []byte, _ string, _ time.Duration) ([]byte, error) {
			var t struct {
				Count  *int  `json:"count"`
				Tokens []int `json:"tokens"`
			}
			if err := json.Unmarshal(b, &t); err != nil {
				return nil, err
			}
			n := len(t.Tokens)
			if t.Count != nil {
				n = *t.Count
			}
			return json.Marshal(map[string]int{"input_tokens": n})
		}}, nil
}

// Package translate turns the wire shapes clients speak — Anthropic
// Messages, OpenAI Responses, Ollama's API — into OpenAI chat completions,
// which every engine serves, and the engines' answers back. Everything
// here is a pure function or a state machine over events: no I/O, so it is
// tested on recorded bodies and fuzzed without a server.
package translate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ChatRequest is the OpenAI chat completion request gantry sends to an
// engine. Fields beyond OpenAI's (top_k, repetition_penalty) are the ones
// vLLM, SGLang and llama.cpp accept.
type ChatRequest struct {
	Model             string          `json:"model"`
	Messages          []ChatMessage   `json:"messages"`
	MaxTokens         *int            `json:"max_tokens,omitempty"`
	Temperature       *float64        `json:"temperature,omitempty"`
	TopP              *float64        `json:"top_p,omitempty"`
	TopK              *int            `json:"top_k,omitempty"`
	Seed              *int            `json:"seed,omitempty"`
	PresencePenalty   *float64        `json:"presence_penalty,omitempty"`
	FrequencyPenalty  *float64        `json:"frequency_penalty,omitempty"`
	RepetitionPenalty *float64        `json:"repetition_penalty,omitempty"`
	Stop              []string        `json:"stop,omitempty"`
	Stream            bool            `json:"stream,omitempty"`
	StreamOptions     *StreamOptions  `json:"stream_options,omitempty"`
	Tools             []Tool          `json:"tools,omitempty"`
	ToolChoice        any             `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
}

// StreamOptions asks for the usage chunk at the end of a stream.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ChatMessage is one message of a chat. Content is a string, a list of
// Parts, or nil (an assistant message that only calls tools).
type ChatMessage struct {
	Role             string     `json:"role"`
	Content          any        `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID       string     `json:"tool_call_id,omitempty"`
}

// Part is one part of a message's content: text or an image.
type Part struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image by URL or data URI.
type ImageURL struct {
	URL string `json:"url"`
}

// Tool is a function the model may call.
type Tool struct {
	Type     string      `json:"type"`
	Function FunctionDef `json:"function"`
}

// FunctionDef describes a callable function.
type FunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// ToolCall is a call the model makes (whole, or a fragment of one in a
// stream's delta).
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

// FunctionCall is a function's name and its arguments as JSON text.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// ChatResponse is an engine's non-streamed answer.
type ChatResponse struct {
	ID      string       `json:"id"`
	Model   string       `json:"model"`
	Created int64        `json:"created"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage"`
}

// ChatChoice is one choice of a ChatResponse. StopReason is vLLM's: the
// stop string that ended the answer, when one did.
type ChatChoice struct {
	Index        int         `json:"index"`
	Message      ChatMessage `json:"message"`
	Text         string      `json:"text,omitempty"` // a completion's (POST /v1/completions)
	FinishReason string      `json:"finish_reason"`
	StopReason   any         `json:"stop_reason,omitempty"`
}

// Usage is the token accounting of an answer.
type Usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details,omitempty"`
}

// Cached is the prompt tokens served from the engine's cache.
func (u *Usage) Cached() int {
	if u == nil || u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

// ChatChunk is one event of a streamed answer.
type ChatChunk struct {
	ID      string        `json:"id"`
	Model   string        `json:"model"`
	Created int64         `json:"created"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage"`
}

// ChunkChoice is one choice of a ChatChunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	Text         *string `json:"text,omitempty"` // a completion stream's
	FinishReason *string `json:"finish_reason"`
	StopReason   any     `json:"stop_reason,omitempty"`
}

// Delta is what one chunk adds.
type Delta struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// EngineError reads the message out of an engine's error body (OpenAI's
// shape, FastAPI's {"detail":…}, Ollama's {"error":"…"}), or the body
// itself.
func EngineError(body []byte) string {
	var e struct {
		Error  json.RawMessage `json:"error"`
		Detail any             `json:"detail"`
	}
	if json.Unmarshal(body, &e) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(e.Error, &inner) == nil && inner.Message != "":
			return inner.Message
		case json.Unmarshal(e.Error, &s) == nil && s != "":
			return s
		case e.Detail != nil:
			return fmt.Sprint(e.Detail)
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// BadRequest is a client's request that cannot be translated; its message
// says what to change. Translators return it (wrapped) for every input
// error, so the gateway answers 400 in the route's shape.
type BadRequest struct{ Msg string }

func (e *BadRequest) Error() string { return e.Msg }

func bad(format string, args ...any) error { return &BadRequest{fmt.Sprintf(format, args...)} }

// IsBadRequest reports whether err is the client's.
func IsBadRequest(err error) bool {
	var b *BadRequest
	return errors.As(err, &b)
}

// decodeStrict decodes JSON into v, as a client's input error when it
// does not fit.
func decodeStrict(body []byte, v any, what string) error {
	if err := json.Unmarshal(body, v); err != nil {
		return bad("the body is not a valid %s request: %v", what, err)
	}
	return nil
}

// textOrParts decodes content given as a string or as a list of blocks.
func textOrParts(raw json.RawMessage, blocks any) (text string, isText bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true, nil
	}
	if raw[0] == '"' {
		err = json.Unmarshal(raw, &text)
		return text, true, err
	}
	return "", false, json.Unmarshal(raw, blocks)
}

// contentString is a message's content as text (parts joined), for
// targets that take only text.
func contentString(c any) string {
	switch v := c.(type) {
	case string:
		return v
	case []Part:
		var b strings.Builder
		for _, p := range v {
			b.WriteString(p.Text)
		}
		return b.String()
	}
	return ""
}

func ptr[T any](v T) *T { return &v }

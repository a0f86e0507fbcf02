package translate

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// MessagesRequest is Anthropic's Messages API request
// (POST /v1/messages), as Claude Code and the Anthropic SDKs send it.
type MessagesRequest struct {
	Model         string          `json:"model"`
	MaxTokens     int             `json:"max_tokens"`
	System        json.RawMessage `json:"system,omitempty"`
	Messages      []AMessage      `json:"messages"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopP          *float64        `json:"top_p,omitempty"`
	TopK          *int            `json:"top_k,omitempty"`
	Tools         []ATool         `json:"tools,omitempty"`
	ToolChoice    *AToolChoice    `json:"tool_choice,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Thinking      json.RawMessage `json:"thinking,omitempty"`
}

// AMessage is one turn: its content is a string or a list of blocks.
type AMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// ABlock is a content block: text, image, tool_use, tool_result, thinking.
type ABlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *ASource        `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
}

// ASource is an image's bytes (base64) or its URL.
type ASource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// ATool is a tool the model may use.
type ATool struct {
	Type        string          `json:"type,omitempty"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// AToolChoice says whether and which tool to use.
type AToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// ParseMessages reads and checks a Messages request.
func ParseMessages(body []byte) (*MessagesRequest, error) {
	var r MessagesRequest
	if err := decodeStrict(body, &r, "Messages"); err != nil {
		return nil, err
	}
	switch {
	case r.Model == "":
		return nil, bad("model: required")
	case r.MaxTokens <= 0:
		return nil, bad("max_tokens: required, and more than 0")
	case len(r.Messages) == 0:
		return nil, bad("messages: at least one message is required")
	}
	for i, m := range r.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, bad("messages.%d.role: %q is neither user nor assistant (the system prompt goes in system)", i, m.Role)
		}
	}
	for i, t := range r.Tools {
		if t.Name == "" {
			return nil, bad("tools.%d.name: required", i)
		}
		if t.Type != "" && t.Type != "custom" {
			return nil, bad("tools.%d: Anthropic's server tool %q runs only on Anthropic's platform; give it as a custom tool with an input_schema", i, t.Type)
		}
	}
	return &r, nil
}

// ToChat turns a Messages request into the chat request for model (the
// engine's name for it). A streamed request asks for the usage chunk.
func (r *MessagesRequest) ToChat(model string) (*ChatRequest, error) {
	c := &ChatRequest{Model: model, MaxTokens: ptr(r.MaxTokens), Temperature: r.Temperature, TopP: r.TopP,
		TopK: r.TopK, Stop: r.StopSequences, Stream: r.Stream}
	if r.Stream {
		c.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	var sys []ABlock
	text, isText, err := textOrParts(r.System, &sys)
	if err != nil {
		return nil, bad("system: %v", err)
	}
	if !isText {
		for _, b := range sys {
			text += b.Text
		}
	}
	if text != "" {
		c.Messages = append(c.Messages, ChatMessage{Role: "system", Content: text})
	}
	for i, m := range r.Messages {
		msgs, err := aMessageToChat(m)
		if err != nil {
			return nil, bad("messages.%d: %v", i, err)
		}
		c.Messages = append(c.Messages, msgs...)
	}
	for _, t := range r.Tools {
		params := t.InputSchema
		if len(params) == 0 {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		c.Tools = append(c.Tools, Tool{Type: "function", Function: FunctionDef{Name: t.Name, Description: t.Description, Parameters: params}})
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "":
			c.ToolChoice = "auto"
		case "any":
			c.ToolChoice = "required"
		case "none":
			c.ToolChoice = "none"
		case "tool":
			c.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			return nil, bad("tool_choice.type: %q is not auto, any, tool or none", tc.Type)
		}
		if tc.DisableParallelToolUse {
			c.ParallelToolCalls = ptr(false)
		}
	}
	return c, nil
}

// aMessageToChat turns one Anthropic turn into chat messages: a user turn's
// tool results become tool messages (first, as they answer the previous
// assistant turn's calls), its text and images one user message; an
// assistant turn's text and tool uses one assistant message.
func aMessageToChat(m AMessage) ([]ChatMessage, error) {
	var blocks []ABlock
	text, isText, err := textOrParts(m.Content, &blocks)
	if err != nil {
		return nil, err
	}
	if isText {
		return []ChatMessage{{Role: m.Role, Content: text}}, nil
	}
	var out []ChatMessage
	var parts []Part
	var calls []ToolCall
	images := false
	for _, b := range blocks {
		switch b.Type {
		case "text":
			parts = append(parts, Part{Type: "text", Text: b.Text})
		case "image":
			if b.Source == nil {
				return nil, bad("an image block needs a source")
			}
			url := b.Source.URL
			if b.Source.Type == "base64" {
				url = "data:" + b.Source.MediaType + ";base64," + b.Source.Data
			}
			parts = append(parts, Part{Type: "image_url", ImageURL: &ImageURL{URL: url}})
			images = true
		case "tool_use":
			args := string(b.Input)
			if args == "" {
				args = "{}"
			}
			calls = append(calls, ToolCall{ID: b.ID, Type: "function", Function: FunctionCall{Name: b.Name, Arguments: args}})
		case "tool_result":
			var inner []ABlock
			result, isText, err := textOrParts(b.Content, &inner)
			if err != nil {
				return nil, err
			}
			if !isText {
				for _, ib := range inner {
					result += ib.Text
				}
			}
			if b.IsError {
				result = "Error: " + result
			}
			out = append(out, ChatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: result})
		case "thinking", "redacted_thinking":
			// The engine thinks anew; its earlier thoughts are not input.
		default:
			return nil, bad("content block type %q is not supported here (text, image, tool_use, tool_result)", b.Type)
		}
	}
	if len(parts) == 0 && len(calls) == 0 {
		return out, nil
	}
	msg := ChatMessage{Role: m.Role, ToolCalls: calls}
	switch {
	case images:
		msg.Content = parts
	case len(parts) > 0:
		msg.Content = contentString(parts)
	}
	return append(out, msg), nil
}

// MessagesResponse is Anthropic's answer.
type MessagesResponse struct {
	ID           string   `json:"id"`
	Type         string   `json:"type"`
	Role         string   `json:"role"`
	Model        string   `json:"model"`
	Content      []ABlock `json:"content"`
	StopReason   string   `json:"stop_reason"`
	StopSequence *string  `json:"stop_sequence"`
	Usage        AUsage   `json:"usage"`
}

// AUsage is Anthropic's token accounting.
type AUsage struct {
	InputTokens          int `json:"input_tokens"`
	OutputTokens         int `json:"output_tokens"`
	CacheReadInputTokens int `json:"cache_read_input_tokens,omitempty"`
}

// FromChat turns an engine's chat answer into a Messages answer; model is
// the name the client asked for.
func (r *MessagesRequest) FromChat(body []byte, model string) ([]byte, error) {
	var c ChatResponse
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	out := MessagesResponse{ID: "msg_" + newID(), Type: "message", Role: "assistant", Model: model, Content: []ABlock{}}
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		if s := contentString(ch.Message.Content); s != "" {
			out.Content = append(out.Content, ABlock{Type: "text", Text: s})
		}
		for _, tc := range ch.Message.ToolCalls {
			out.Content = append(out.Content, ABlock{Type: "tool_use", ID: toolID(tc.ID), Name: tc.Function.Name, Input: jsonObject(tc.Function.Arguments)})
		}
		out.StopReason, out.StopSequence = stopReason(ch.FinishReason, ch.StopReason, r.StopSequences)
	}
	if len(out.Content) == 0 {
		out.Content = []ABlock{{Type: "text", Text: ""}} // as Anthropic's own empty answer
	}
	if c.Usage != nil {
		out.Usage = AUsage{InputTokens: c.Usage.PromptTokens, OutputTokens: c.Usage.CompletionTokens, CacheReadInputTokens: c.Usage.Cached()}
	}
	return json.Marshal(out)
}

// stopReason maps OpenAI's finish reason to Anthropic's; vLLM's
// stop_reason names the stop string that ended the answer.
func stopReason(finish string, engineStop any, stops []string) (string, *string) {
	switch finish {
	case "length":
		return "max_tokens", nil
	case "tool_calls", "function_call":
		return "tool_use", nil
	case "content_filter":
		return "refusal", nil
	}
	if s, ok := engineStop.(string); ok {
		for _, st := range stops {
			if st == s {
				return "stop_sequence", &s
			}
		}
	}
	return "end_turn", nil
}

// jsonObject is a tool call's arguments as a JSON object; arguments a
// model wrote that are not one are passed as {"arguments": "<text>"}.
func jsonObject(args string) json.RawMessage {
	var obj map[string]any
	if strings.TrimSpace(args) == "" {
		return json.RawMessage(`{}`)
	}
	if json.Unmarshal([]byte(args), &obj) != nil {
		b, _ := json.Marshal(map[string]string{"arguments": args})
		return b
	}
	return json.RawMessage(args)
}

// toolID is a tool call's id as Anthropic clients expect one ("toolu_…").
func toolID(id string) string {
	if id == "" {
		return "toolu_" + newID()
	}
	return id
}

func newID() string {
	var b [12]byte
	rand.Read(b[:]) //nolint:errcheck // never fails on Linux
	return hex.EncodeToString(b[:])
}

// AnthropicError is the body of an error in Anthropic's shape.
func AnthropicError(status int, msg string) []byte {
	typ := "api_error"
	switch {
	case status == 400 || status == 413 || status == 415:
		typ = "invalid_request_error"
	case status == 401:
		typ = "authentication_error"
	case status == 403:
		typ = "permission_error"
	case status == 404:
		typ = "not_found_error"
	case status == 429:
		typ = "rate_limit_error"
	case status == 503 || status == 529:
		typ = "overloaded_error"
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	return b
}

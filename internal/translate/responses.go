package translate

import (
	"encoding/json"
	"time"
)

// ResponsesRequest is OpenAI's Responses API request (POST /v1/responses),
// as Codex and newer OpenAI SDK code send it. gantry serves it stateless:
// store is treated as false, and previous_response_id is refused.
type ResponsesRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       string          `json:"instructions,omitempty"`
	Tools              []RTool         `json:"tools,omitempty"`
	ToolChoice         json.RawMessage `json:"tool_choice,omitempty"`
	MaxOutputTokens    *int            `json:"max_output_tokens,omitempty"`
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"top_p,omitempty"`
	Stream             bool            `json:"stream,omitempty"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls,omitempty"`
	PreviousResponseID string          `json:"previous_response_id,omitempty"`
	Store              *bool           `json:"store,omitempty"`
	Text               *struct {
		Format json.RawMessage `json:"format,omitempty"`
	} `json:"text,omitempty"`
	Reasoning json.RawMessage `json:"reasoning,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	User      string          `json:"user,omitempty"`
}

// RTool is a Responses tool; only function tools run on a local engine.
type RTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// RItem is one input item: a message, a function call, its output.
type RItem struct {
	Type      string          `json:"type,omitempty"`
	Role      string          `json:"role,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	CallID    string          `json:"call_id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Arguments string          `json:"arguments,omitempty"`
	Output    json.RawMessage `json:"output,omitempty"`
}

// RPart is a part of a message's content.
type RPart struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	ImageURL string `json:"image_url,omitempty"`
}

// ParseResponses reads and checks a Responses request.
func ParseResponses(body []byte) (*ResponsesRequest, error) {
	var r ResponsesRequest
	if err := decodeStrict(body, &r, "Responses"); err != nil {
		return nil, err
	}
	switch {
	case r.Model == "":
		return nil, bad("model: required")
	case r.PreviousResponseID != "":
		return nil, bad("previous_response_id: gantry keeps no conversations (it serves the Responses API stateless, as with store: false); send the whole conversation in input")
	case len(r.Input) == 0:
		return nil, bad("input: required")
	}
	for i, t := range r.Tools {
		if t.Type != "function" {
			return nil, bad("tools.%d: %q is a tool that runs on OpenAI's platform; a local model can call function tools only", i, t.Type)
		}
	}
	return &r, nil
}

// ToChat turns a Responses request into the chat request for model.
func (r *ResponsesRequest) ToChat(model string) (*ChatRequest, error) {
	c := &ChatRequest{Model: model, MaxTokens: r.MaxOutputTokens, Temperature: r.Temperature, TopP: r.TopP,
		Stream: r.Stream, ParallelToolCalls: r.ParallelToolCalls}
	if r.Stream {
		c.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	if r.Instructions != "" {
		c.Messages = append(c.Messages, ChatMessage{Role: "system", Content: r.Instructions})
	}
	var items []RItem
	text, isText, err := textOrParts(r.Input, &items)
	if err != nil {
		return nil, bad("input: %v", err)
	}
	if isText {
		c.Messages = append(c.Messages, ChatMessage{Role: "user", Content: text})
	}
	for i, it := range items {
		switch {
		case it.Type == "message" || (it.Type == "" && it.Role != ""):
			msg, err := rMessage(it)
			if err != nil {
				return nil, bad("input.%d: %v", i, err)
			}
			c.Messages = append(c.Messages, msg)
		case it.Type == "function_call":
			call := ToolCall{ID: it.CallID, Type: "function", Function: FunctionCall{Name: it.Name, Arguments: it.Arguments}}
			// Calls of one turn belong to one assistant message.
			if n := len(c.Messages); n > 0 && c.Messages[n-1].Role == "assistant" && c.Messages[n-1].Content == nil {
				c.Messages[n-1].ToolCalls = append(c.Messages[n-1].ToolCalls, call)
			} else {
				c.Messages = append(c.Messages, ChatMessage{Role: "assistant", ToolCalls: []ToolCall{call}})
			}
		case it.Type == "function_call_output":
			out := string(it.Output)
			var s string
			if json.Unmarshal(it.Output, &s) == nil {
				out = s
			}
			c.Messages = append(c.Messages, ChatMessage{Role: "tool", ToolCallID: it.CallID, Content: out})
		case it.Type == "reasoning":
			// The engine reasons anew.
		default:
			return nil, bad("input.%d: item type %q is not supported here (message, function_call, function_call_output)", i, it.Type)
		}
	}
	for _, t := range r.Tools {
		params := t.Parameters
		if len(params) == 0 {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		c.Tools = append(c.Tools, Tool{Type: "function", Function: FunctionDef{Name: t.Name, Description: t.Description, Parameters: params}})
	}
	if len(r.ToolChoice) > 0 {
		var s string
		var named struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		switch {
		case json.Unmarshal(r.ToolChoice, &s) == nil:
			c.ToolChoice = s
		case json.Unmarshal(r.ToolChoice, &named) == nil && named.Name != "":
			c.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": named.Name}}
		default:
			return nil, bad("tool_choice: want auto, none, required or {type: function, name}")
		}
	}
	if r.Text != nil && len(r.Text.Format) > 0 {
		f, err := responseFormat(r.Text.Format)
		if err != nil {
			return nil, err
		}
		c.ResponseFormat = f
	}
	return c, nil
}

// responseFormat turns text.format ({type: json_schema, name, schema}) into
// chat's response_format ({type: json_schema, json_schema: {name, schema}}).
func responseFormat(raw json.RawMessage) (json.RawMessage, error) {
	var f struct {
		Type   string          `json:"type"`
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict *bool           `json:"strict"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, bad("text.format: %v", err)
	}
	switch f.Type {
	case "text", "":
		return nil, nil
	case "json_object":
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		b, _ := json.Marshal(map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": f.Name, "schema": f.Schema, "strict": f.Strict}})
		return b, nil
	}
	return nil, bad("text.format.type: %q is not text, json_object or json_schema", f.Type)
}

func rMessage(it RItem) (ChatMessage, error) {
	role := it.Role
	if role == "developer" {
		role = "system"
	}
	var parts []RPart
	text, isText, err := textOrParts(it.Content, &parts)
	if err != nil {
		return ChatMessage{}, err
	}
	if isText {
		return ChatMessage{Role: role, Content: text}, nil
	}
	var out []Part
	images := false
	for _, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text":
			out = append(out, Part{Type: "text", Text: p.Text})
		case "input_image":
			if p.ImageURL == "" {
				return ChatMessage{}, bad("an input_image needs image_url (file_id refers to OpenAI's file store)")
			}
			out = append(out, Part{Type: "image_url", ImageURL: &ImageURL{URL: p.ImageURL}})
			images = true
		case "refusal":
		default:
			return ChatMessage{}, bad("content part type %q is not supported here", p.Type)
		}
	}
	if images {
		return ChatMessage{Role: role, Content: out}, nil
	}
	return ChatMessage{Role: role, Content: contentString(out)}, nil
}

// Response is a Responses API answer object.
type Response struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	CreatedAt         int64           `json:"created_at"`
	Status            string          `json:"status"`
	Model             string          `json:"model"`
	Output            []ROutput       `json:"output"`
	Usage             *RUsage         `json:"usage"`
	IncompleteDetails *RIncomplete    `json:"incomplete_details"`
	Instructions      *string         `json:"instructions"`
	ParallelToolCalls bool            `json:"parallel_tool_calls"`
	Tools             []RTool         `json:"tools"`
	ToolChoice        any             `json:"tool_choice"`
	Temperature       *float64        `json:"temperature"`
	TopP              *float64        `json:"top_p"`
	MaxOutputTokens   *int            `json:"max_output_tokens"`
	PreviousResponse  *string         `json:"previous_response_id"`
	Store             bool            `json:"store"`
	Error             any             `json:"error"`
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	OutputText        string          `json:"output_text,omitempty"`
}

// ROutput is one output item: a message or a function call.
type ROutput struct {
	ID        string        `json:"id"`
	Type      string        `json:"type"`
	Status    string        `json:"status"`
	Role      string        `json:"role,omitempty"`
	Content   []ROutputPart `json:"content,omitempty"`
	CallID    string        `json:"call_id,omitempty"`
	Name      string        `json:"name,omitempty"`
	Arguments *string       `json:"arguments,omitempty"`
}

// ROutputPart is a part of an output message.
type ROutputPart struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

// RUsage is the Responses API's token accounting.
type RUsage struct {
	InputTokens        int `json:"input_tokens"`
	OutputTokens       int `json:"output_tokens"`
	TotalTokens        int `json:"total_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

func rUsage(u *Usage) *RUsage {
	if u == nil {
		return nil
	}
	r := &RUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
	r.InputTokensDetails.CachedTokens = u.Cached()
	return r
}

// shell is the response object before its output, as the request shapes it.
func (r *ResponsesRequest) shell(id, model, status string) *Response {
	resp := &Response{ID: id, Object: "response", CreatedAt: time.Now().Unix(), Status: status, Model: model,
		Output: []ROutput{}, Tools: r.Tools, Temperature: r.Temperature, TopP: r.TopP, MaxOutputTokens: r.MaxOutputTokens,
		ParallelToolCalls: r.ParallelToolCalls == nil || *r.ParallelToolCalls, ToolChoice: "auto", Metadata: r.Metadata}
	if resp.Tools == nil {
		resp.Tools = []RTool{}
	}
	if r.Instructions != "" {
		resp.Instructions = &r.Instructions
	}
	if len(r.ToolChoice) > 0 {
		resp.ToolChoice = json.RawMessage(r.ToolChoice)
	}
	return resp
}

// FromChat turns an engine's chat answer into a Responses answer.
func (r *ResponsesRequest) FromChat(body []byte, model string) ([]byte, error) {
	var c ChatResponse
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	resp := r.shell("resp_"+newID(), model, "completed")
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		if s := contentString(ch.Message.Content); s != "" {
			resp.Output = append(resp.Output, ROutput{ID: "msg_" + newID(), Type: "message", Status: "completed", Role: "assistant",
				Content: []ROutputPart{{Type: "output_text", Text: s, Annotations: []any{}}}})
			resp.OutputText = s
		}
		for _, tc := range ch.Message.ToolCalls {
			args := tc.Function.Arguments
			resp.Output = append(resp.Output, ROutput{ID: "fc_" + newID(), Type: "function_call", Status: "completed",
				CallID: toolCallID(tc.ID), Name: tc.Function.Name, Arguments: &args})
		}
		if ch.FinishReason == "length" {
			resp.Status = "incomplete"
			resp.IncompleteDetails = &RIncomplete{Reason: "max_output_tokens"}
		}
	}
	resp.Usage = rUsage(c.Usage)
	return json.Marshal(resp)
}

func toolCallID(id string) string {
	if id == "" {
		return "call_" + newID()
	}
	return id
}

// RIncomplete says why a response is incomplete.
type RIncomplete struct {
	Reason string `json:"reason"`
}

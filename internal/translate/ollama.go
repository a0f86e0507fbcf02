package translate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Ollama's API (/api/chat, /api/generate, /api/embed, /api/embeddings),
// for clients that speak only it — IDE plugins, Home Assistant, Obsidian,
// Open WebUI's Ollama connection — served for every gantry model, whatever
// its engine.

// OllamaOptions are Ollama's sampling options that have an OpenAI twin;
// num_ctx and the like are gantry's to plan and are ignored.
type OllamaOptions struct {
	Temperature      *float64 `json:"temperature,omitempty"`
	TopP             *float64 `json:"top_p,omitempty"`
	TopK             *int     `json:"top_k,omitempty"`
	Seed             *int     `json:"seed,omitempty"`
	NumPredict       *int     `json:"num_predict,omitempty"`
	Stop             []string `json:"stop,omitempty"`
	RepeatPenalty    *float64 `json:"repeat_penalty,omitempty"`
	PresencePenalty  *float64 `json:"presence_penalty,omitempty"`
	FrequencyPenalty *float64 `json:"frequency_penalty,omitempty"`
}

func (o *OllamaOptions) apply(c *ChatRequest) {
	if o == nil {
		return
	}
	c.Temperature, c.TopP, c.TopK, c.Seed = o.Temperature, o.TopP, o.TopK, o.Seed
	c.PresencePenalty, c.FrequencyPenalty, c.RepetitionPenalty = o.PresencePenalty, o.FrequencyPenalty, o.RepeatPenalty
	c.Stop = o.Stop
	if o.NumPredict != nil && *o.NumPredict > 0 { // -1: unlimited
		c.MaxTokens = o.NumPredict
	}
}

// OllamaMessage is one message of /api/chat.
type OllamaMessage struct {
	Role      string           `json:"role"`
	Content   string           `json:"content"`
	Images    []string         `json:"images,omitempty"`
	ToolCalls []OllamaToolCall `json:"tool_calls,omitempty"`
	ToolName  string           `json:"tool_name,omitempty"`
	Thinking  string           `json:"thinking,omitempty"`
}

// OllamaToolCall is a call with its arguments as an object.
type OllamaToolCall struct {
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// OllamaRequest is /api/chat's or /api/generate's request (stream is true
// unless set false, as in Ollama).
type OllamaRequest struct {
	Model     string          `json:"model"`
	Messages  []OllamaMessage `json:"messages,omitempty"`
	Prompt    string          `json:"prompt,omitempty"`
	System    string          `json:"system,omitempty"`
	Suffix    string          `json:"suffix,omitempty"`
	Images    []string        `json:"images,omitempty"`
	Raw       bool            `json:"raw,omitempty"`
	Format    json.RawMessage `json:"format,omitempty"`
	Options   *OllamaOptions  `json:"options,omitempty"`
	Stream    *bool           `json:"stream,omitempty"`
	KeepAlive json.RawMessage `json:"keep_alive,omitempty"`
	Tools     []Tool          `json:"tools,omitempty"`
	Think     json.RawMessage `json:"think,omitempty"`
	Template  string          `json:"template,omitempty"`
	Context   []int           `json:"context,omitempty"`

	generate bool
}

// ParseOllama reads an /api/chat (generate false) or /api/generate request.
func ParseOllama(body []byte, generate bool) (*OllamaRequest, error) {
	var r OllamaRequest
	if err := decodeStrict(body, &r, "Ollama"); err != nil {
		return nil, err
	}
	r.generate = generate
	if r.Model == "" {
		return nil, bad("model is required")
	}
	if _, _, err := r.KeepAliveFor(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Streams reports whether the answer is streamed (Ollama's default).
func (r *OllamaRequest) Streams() bool { return r.Stream == nil || *r.Stream }

// Empty reports whether the request only loads (or with keep_alive 0,
// unloads) the model: Ollama's way to do that is a request without input.
func (r *OllamaRequest) Empty() bool {
	if r.generate {
		return r.Prompt == "" && len(r.Images) == 0
	}
	return len(r.Messages) == 0
}

// KeepAliveFor reads keep_alive: a duration ("5m"), seconds (300), 0 to
// unload after the request, a negative value to keep loaded. set is false
// when the request does not say.
func (r *OllamaRequest) KeepAliveFor() (d time.Duration, set bool, err error) {
	if len(r.KeepAlive) == 0 || string(r.KeepAlive) == "null" {
		return 0, false, nil
	}
	var n float64
	if json.Unmarshal(r.KeepAlive, &n) == nil {
		return time.Duration(n * float64(time.Second)), true, nil
	}
	var s string
	if json.Unmarshal(r.KeepAlive, &s) == nil {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(f * float64(time.Second)), true, nil
		}
		if d, err := time.ParseDuration(s); err == nil {
			return d, true, nil
		}
	}
	return 0, false, bad("keep_alive: %s is not a duration (5m) or a number of seconds", r.KeepAlive)
}

// Path is the engine route the request goes to: a raw generate is a plain
// completion, everything else a chat.
func (r *OllamaRequest) Path() string {
	if r.generate && r.Raw {
		return "/v1/completions"
	}
	return "/v1/chat/completions"
}

// ToOpenAI is the body for Path, for model.
func (r *OllamaRequest) ToOpenAI(model string) (any, error) {
	c := &ChatRequest{Model: model, Stream: r.Streams(), Tools: r.Tools}
	if c.Stream {
		c.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	r.Options.apply(c)
	if f, err := ollamaFormat(r.Format); err != nil {
		return nil, err
	} else if f != nil {
		c.ResponseFormat = f
	}
	if r.generate && r.Raw {
		// A plain completion: the same parameters, a prompt instead of messages.
		b, _ := json.Marshal(c)
		var m map[string]any
		json.Unmarshal(b, &m) //nolint:errcheck // just marshalled
		delete(m, "messages")
		m["prompt"] = r.Prompt
		return m, nil
	}
	if r.generate {
		if r.System != "" {
			c.Messages = append(c.Messages, ChatMessage{Role: "system", Content: r.System})
		}
		c.Messages = append(c.Messages, ollamaUser(r.Prompt, r.Images))
		return c, nil
	}
	for _, m := range r.Messages {
		switch {
		case m.Role == "tool":
			c.Messages = append(c.Messages, ChatMessage{Role: "tool", Content: m.Content, ToolCallID: m.ToolName})
		case len(m.Images) > 0:
			cm := ollamaUser(m.Content, m.Images)
			cm.Role = m.Role
			c.Messages = append(c.Messages, cm)
		default:
			cm := ChatMessage{Role: m.Role, Content: m.Content}
			for i, tc := range m.ToolCalls {
				args := string(tc.Function.Arguments)
				if args == "" {
					args = "{}"
				}
				cm.ToolCalls = append(cm.ToolCalls, ToolCall{ID: fmt.Sprintf("call_%d", i), Type: "function",
					Function: FunctionCall{Name: tc.Function.Name, Arguments: args}})
			}
			c.Messages = append(c.Messages, cm)
		}
	}
	return c, nil
}

func ollamaUser(text string, images []string) ChatMessage {
	if len(images) == 0 {
		return ChatMessage{Role: "user", Content: text}
	}
	parts := []Part{{Type: "text", Text: text}}
	for _, im := range images {
		parts = append(parts, Part{Type: "image_url", ImageURL: &ImageURL{URL: "data:image/png;base64," + im}})
	}
	return ChatMessage{Role: "user", Content: parts}
}

// ollamaFormat turns format ("json", or a JSON schema) into
// response_format.
func ollamaFormat(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return nil, nil
	}
	if string(raw) == `"json"` {
		return json.RawMessage(`{"type":"json_object"}`), nil
	}
	if raw[0] == '{' {
		b, _ := json.Marshal(map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "format", "schema": raw}})
		return b, nil
	}
	return nil, bad(`format: want "json" or a JSON schema`)
}

// done is the last object of an answer, with the durations and counts
// Ollama reports (nanoseconds).
func (r *OllamaRequest) done(model, reason string, u *Usage, took time.Duration) map[string]any {
	d := map[string]any{"model": model, "created_at": time.Now().UTC().Format(time.RFC3339Nano), "done": true,
		"done_reason": reason, "total_duration": took.Nanoseconds(), "load_duration": 0}
	if u != nil {
		d["prompt_eval_count"], d["eval_count"] = u.PromptTokens, u.CompletionTokens
		d["prompt_eval_duration"], d["eval_duration"] = 0, took.Nanoseconds()
	}
	return d
}

func doneReason(finish string) string {
	if finish == "length" {
		return "length"
	}
	return "stop"
}

func ollamaCalls(calls []ToolCall) []OllamaToolCall {
	var out []OllamaToolCall
	for _, tc := range calls {
		var oc OllamaToolCall
		oc.Function.Name = tc.Function.Name
		oc.Function.Arguments = jsonObject(tc.Function.Arguments)
		out = append(out, oc)
	}
	return out
}

// FromOpenAI turns the engine's non-streamed answer into Ollama's.
func (r *OllamaRequest) FromOpenAI(body []byte, model string, took time.Duration) ([]byte, error) {
	var c ChatResponse
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	finish, text := "stop", ""
	var calls []ToolCall
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		finish, calls = ch.FinishReason, ch.Message.ToolCalls
		text = contentString(ch.Message.Content)
		if ch.Text != "" {
			text = ch.Text
		}
	}
	d := r.done(model, doneReason(finish), c.Usage, took)
	if r.generate {
		d["response"] = text
	} else {
		d["message"] = OllamaMessage{Role: "assistant", Content: text, ToolCalls: ollamaCalls(calls)}
	}
	return json.Marshal(d)
}

// OllamaStream translates a chat or completion stream into Ollama's NDJSON:
// one object per piece of text, done: false, then the done object.
type OllamaStream struct {
	req      *OllamaRequest
	model    string
	began    time.Time
	usage    *Usage
	finish   string
	calls    map[int]*ToolCall
	order    []int
	finished bool
}

// NewStream returns the translator of this request's stream.
func (r *OllamaRequest) NewStream(model string) *OllamaStream {
	return &OllamaStream{req: r, model: model, began: time.Now(), finish: "stop", calls: map[int]*ToolCall{}}
}

func (s *OllamaStream) line(buf []byte, v any) []byte {
	b, _ := json.Marshal(v)
	return append(append(buf, b...), '\n')
}

func (s *OllamaStream) piece(buf []byte, text string) []byte {
	return s.ollamaPiece(buf, time.Now().UTC().Format(time.RFC3339Nano), text)
}

// Chunk translates one chunk.
func (s *OllamaStream) Chunk(data []byte) ([]byte, error) {
	c, err := decodeChunk(data)
	if err != nil {
		return nil, err
	}
	if c.Usage != nil {
		s.usage = c.Usage
	}
	var buf []byte
	for _, ch := range c.Choices {
		text := ""
		if ch.Delta.Content != nil {
			text = *ch.Delta.Content
		}
		if ch.Text != nil {
			text = *ch.Text
		}
		if text != "" {
			buf = s.piece(buf, text)
		}
		for i, tc := range ch.Delta.ToolCalls {
			k := i
			if tc.Index != nil {
				k = *tc.Index
			}
			if s.calls[k] == nil {
				s.calls[k] = &ToolCall{ID: tc.ID, Function: FunctionCall{Name: tc.Function.Name}}
				s.order = append(s.order, k)
			}
			s.calls[k].Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
		}
	}
	return buf, nil
}

// End sends Ollama's done object (with the tool calls, whole, which Ollama
// sends in one message rather than in fragments).
func (s *OllamaStream) End() []byte {
	if s.finished {
		return nil
	}
	s.finished = true
	d := s.req.done(s.model, doneReason(s.finish), s.usage, time.Since(s.began))
	if s.req.generate {
		d["response"] = ""
	} else {
		var calls []ToolCall
		for _, k := range s.order {
			calls = append(calls, *s.calls[k])
		}
		d["message"] = OllamaMessage{Role: "assistant", ToolCalls: ollamaCalls(calls)}
	}
	return s.line(nil, d)
}

// Fail ends the stream as Ollama does: an object with "error".
func (s *OllamaStream) Fail(msg string) []byte {
	s.finished = true
	return s.line(nil, map[string]string{"error": msg})
}

// Usage is the stream's token accounting once it has ended.
func (s *OllamaStream) Usage() (prompt, completion, cached int) {
	if s.usage == nil {
		return 0, 0, 0
	}
	return s.usage.PromptTokens, s.usage.CompletionTokens, s.usage.Cached()
}

// OllamaEmbedRequest is /api/embed's (input) or /api/embeddings' (prompt).
type OllamaEmbedRequest struct {
	Model      string          `json:"model"`
	Input      json.RawMessage `json:"input,omitempty"`
	Prompt     string          `json:"prompt,omitempty"`
	Truncate   *bool           `json:"truncate,omitempty"`
	Dimensions int             `json:"dimensions,omitempty"`
	KeepAlive  json.RawMessage `json:"keep_alive,omitempty"`
	Options    json.RawMessage `json:"options,omitempty"`
}

// ParseOllamaEmbed reads an embedding request.
func ParseOllamaEmbed(body []byte) (*OllamaEmbedRequest, error) {
	var r OllamaEmbedRequest
	if err := decodeStrict(body, &r, "Ollama embed"); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, bad("model is required")
	}
	return &r, nil
}

// ToOpenAI is the /v1/embeddings body.
func (r *OllamaEmbedRequest) ToOpenAI(model string) (map[string]any, error) {
	m := map[string]any{"model": model}
	switch {
	case len(r.Input) > 0:
		var one string
		var many []string
		if json.Unmarshal(r.Input, &one) == nil {
			m["input"] = []string{one}
		} else if json.Unmarshal(r.Input, &many) == nil {
			m["input"] = many
		} else {
			return nil, bad("input: want a string or a list of strings")
		}
	default:
		m["input"] = []string{r.Prompt}
	}
	if r.Dimensions > 0 {
		m["dimensions"] = r.Dimensions
	}
	return m, nil
}

// FromOpenAI turns /v1/embeddings' answer into /api/embed's (legacy: the
// single "embedding" of /api/embeddings).
func (r *OllamaEmbedRequest) FromOpenAI(body []byte, model string, took time.Duration, legacy bool) ([]byte, error) {
	var e struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage *Usage `json:"usage"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, err
	}
	if legacy {
		var v []float64
		if len(e.Data) > 0 {
			v = e.Data[0].Embedding
		}
		return json.Marshal(map[string]any{"embedding": v})
	}
	out := map[string]any{"model": model, "embeddings": [][]float64{}, "total_duration": took.Nanoseconds(), "load_duration": 0}
	embs := [][]float64{}
	for _, d := range e.Data {
		embs = append(embs, d.Embedding)
	}
	out["embeddings"] = embs
	if e.Usage != nil {
		out["prompt_eval_count"] = e.Usage.PromptTokens
	}
	return json.Marshal(out)
}

// OllamaError is Ollama's error body.
func OllamaError(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": strings.TrimSpace(msg)})
	return b
}

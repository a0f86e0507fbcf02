package translate

import (
	"encoding/json"
	"fmt"
)

// Stream turns the chunks of an engine's streamed chat answer into the
// events of a client's protocol. It is a state machine fed by the gateway:
// Chunk for every "data:" event, End when the engine's stream ends
// ([DONE]), Fail when it breaks. Each returns the bytes to send, ready
// (server-sent events or NDJSON lines).
type Stream interface {
	Chunk(data []byte) ([]byte, error)
	End() []byte
	Fail(msg string) []byte
}

// UsageCounter is a Stream that counted the tokens of what it translated
// (the engine's usage chunk, which its clients' wire shape carries
// elsewhere): the gateway finds it by type assertion for the activity log.
type UsageCounter interface {
	Usage() (prompt, completion, cached int)
}

// Every stream translator counts its usage.
var (
	_ UsageCounter = (*AnthropicStream)(nil)
	_ UsageCounter = (*ResponsesStream)(nil)
	_ UsageCounter = (*OllamaStream)(nil)
)

// sse formats one server-sent event with a name and a JSON body.
func sse(buf []byte, event string, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"type":"error","error":{"type":"api_error","message":%q}}`, err.Error()))
	}
	buf = append(buf, "event: "...)
	buf = append(buf, event...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, b...)
	return append(buf, "\n\n"...)
}

// AnthropicStream translates a chat stream into Anthropic's event
// sequence: message_start, ping, then per content block
// content_block_start, content_block_delta…, content_block_stop, and at the
// end message_delta (stop reason, usage) and message_stop.
type AnthropicStream struct {
	req     *MessagesRequest
	model   string
	id      string
	started bool
	// open is the index of the open block, -1 when none; openKind its type.
	open     int
	openKind string
	next     int         // the next block's index
	tools    map[int]int // the engine's tool call index → block index
	stop     string
	stopSeq  *string
	usage    AUsage
	finished bool
}

// NewStream returns the translator of this request's stream; model is the
// name the client asked for.
func (r *MessagesRequest) NewStream(model string) *AnthropicStream {
	return &AnthropicStream{req: r, model: model, id: "msg_" + newID(), open: -1, tools: map[int]int{}, stop: "end_turn"}
}

func (s *AnthropicStream) start(buf []byte) []byte {
	if s.started {
		return buf
	}
	s.started = true
	buf = sse(buf, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": s.id, "type": "message", "role": "assistant", "model": s.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": AUsage{}}})
	return sse(buf, "ping", map[string]string{"type": "ping"})
}

func (s *AnthropicStream) closeBlock(buf []byte) []byte {
	if s.open < 0 {
		return buf
	}
	buf = sse(buf, "content_block_stop", map[string]any{"type": "content_block_stop", "index": s.open})
	s.open, s.openKind = -1, ""
	return buf
}

func (s *AnthropicStream) openBlock(buf []byte, kind string, block map[string]any) []byte {
	buf = s.closeBlock(buf)
	s.open, s.openKind = s.next, kind
	s.next++
	return sse(buf, "content_block_start", map[string]any{"type": "content_block_start", "index": s.open, "content_block": block})
}

// Chunk translates one chat chunk.
func (s *AnthropicStream) Chunk(data []byte) ([]byte, error) {
	c, err := decodeChunk(data)
	if err != nil {
		return nil, err
	}
	buf := s.start(nil)
	if c.Usage != nil {
		s.usage = AUsage{InputTokens: c.Usage.PromptTokens, OutputTokens: c.Usage.CompletionTokens, CacheReadInputTokens: c.Usage.Cached()}
	}
	for _, ch := range c.Choices {
		if t := ch.Delta.Content; t != nil && *t != "" {
			if s.openKind != "text" {
				buf = s.openBlock(buf, "text", map[string]any{"type": "text", "text": ""})
			}
			buf = anthropicTextDelta(buf, s.open, *t)
		}
		for i, tc := range ch.Delta.ToolCalls {
			k := i
			if tc.Index != nil {
				k = *tc.Index
			}
			idx, known := s.tools[k]
			if !known {
				buf = s.openBlock(buf, "tool_use", map[string]any{"type": "tool_use", "id": toolID(tc.ID), "name": tc.Function.Name, "input": map[string]any{}})
				s.tools[k] = s.open
				idx = s.open
			}
			if tc.Function.Arguments != "" && idx == s.open {
				buf = sse(buf, "content_block_delta", map[string]any{"type": "content_block_delta", "index": idx,
					"delta": map[string]string{"type": "input_json_delta", "partial_json": tc.Function.Arguments}})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.stop, s.stopSeq = stopReason(*ch.FinishReason, ch.StopReason, s.req.StopSequences)
		}
	}
	return buf, nil
}

// End closes the message.
func (s *AnthropicStream) End() []byte {
	if s.finished {
		return nil
	}
	s.finished = true
	buf := s.start(nil)
	if s.next == 0 {
		// An answer without content still has its (empty) text block, as
		// Anthropic's own.
		buf = s.openBlock(buf, "text", map[string]any{"type": "text", "text": ""})
	}
	buf = s.closeBlock(buf)
	buf = sse(buf, "message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": s.stop, "stop_sequence": s.stopSeq}, "usage": s.usage})
	return sse(buf, "message_stop", map[string]string{"type": "message_stop"})
}

// Fail ends the stream with Anthropic's error event.
func (s *AnthropicStream) Fail(msg string) []byte {
	s.finished = true
	return sse(nil, "error", map[string]any{"type": "error", "error": map[string]string{"type": "api_error", "message": msg}})
}

// Usage is the stream's token accounting once it has ended.
func (s *AnthropicStream) Usage() (prompt, completion, cached int) {
	return s.usage.InputTokens, s.usage.OutputTokens, s.usage.CacheReadInputTokens
}

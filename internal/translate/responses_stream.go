package translate

import (
	"strings"
)

// ResponsesStream translates a chat stream into the Responses API's
// events: response.created and response.in_progress; per output item
// response.output_item.added, for text response.content_part.added,
// response.output_text.delta… and .done, response.content_part.done, for a
// function call response.function_call_arguments.delta… and .done; then
// response.output_item.done; and at the end response.completed with the
// usage.
type ResponsesStream struct {
	req     *ResponsesRequest
	resp    *Response
	seq     int
	started bool
	// the open item: its index in resp.Output, -1 when none
	open     int
	text     strings.Builder // of the open message (a Builder: += on a string copied it all per token)
	calls    map[int]int     // the engine's tool call index → output index
	args     map[int]*string // output index → arguments so far
	finished bool
}

// NewStream returns the translator of this request's stream.
func (r *ResponsesRequest) NewStream(model string) *ResponsesStream {
	return &ResponsesStream{req: r, resp: r.shell("resp_"+newID(), model, "in_progress"), open: -1,
		calls: map[int]int{}, args: map[int]*string{}}
}

func (s *ResponsesStream) event(buf []byte, typ string, fields map[string]any) []byte {
	fields["type"] = typ
	fields["sequence_number"] = s.seq
	s.seq++
	return sse(buf, typ, fields)
}

func (s *ResponsesStream) start(buf []byte) []byte {
	if s.started {
		return buf
	}
	s.started = true
	buf = s.event(buf, "response.created", map[string]any{"response": s.resp})
	return s.event(buf, "response.in_progress", map[string]any{"response": s.resp})
}

// closeItem finishes the open output item.
func (s *ResponsesStream) closeItem(buf []byte) []byte {
	if s.open < 0 {
		return buf
	}
	i := s.open
	it := &s.resp.Output[i]
	it.Status = "completed"
	if it.Type == "message" {
		text := s.text.String()
		part := ROutputPart{Type: "output_text", Text: text, Annotations: []any{}}
		it.Content = []ROutputPart{part}
		buf = s.event(buf, "response.output_text.done", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "text": text})
		buf = s.event(buf, "response.content_part.done", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "part": part})
		s.resp.OutputText += text
	} else {
		it.Arguments = s.args[i]
		buf = s.event(buf, "response.function_call_arguments.done", map[string]any{"item_id": it.ID, "output_index": i, "arguments": *s.args[i]})
	}
	buf = s.event(buf, "response.output_item.done", map[string]any{"output_index": i, "item": *it})
	s.open = -1
	return buf
}

// Chunk translates one chat chunk.
func (s *ResponsesStream) Chunk(data []byte) ([]byte, error) {
	c, err := decodeChunk(data)
	if err != nil {
		return nil, err
	}
	buf := s.start(nil)
	if c.Usage != nil {
		s.resp.Usage = rUsage(c.Usage)
	}
	for _, ch := range c.Choices {
		if t := ch.Delta.Content; t != nil && *t != "" {
			if s.open < 0 || s.resp.Output[s.open].Type != "message" {
				buf = s.closeItem(buf)
				s.resp.Output = append(s.resp.Output, ROutput{ID: "msg_" + newID(), Type: "message", Status: "in_progress", Role: "assistant", Content: []ROutputPart{}})
				s.open = len(s.resp.Output) - 1
				s.text.Reset()
				it := s.resp.Output[s.open]
				buf = s.event(buf, "response.output_item.added", map[string]any{"output_index": s.open, "item": it})
				buf = s.event(buf, "response.content_part.added", map[string]any{"item_id": it.ID, "output_index": s.open, "content_index": 0,
					"part": ROutputPart{Type: "output_text", Text: "", Annotations: []any{}}})
			}
			s.text.WriteString(*t)
			buf = s.textDelta(buf, *t)
		}
		for i, tc := range ch.Delta.ToolCalls {
			k := i
			if tc.Index != nil {
				k = *tc.Index
			}
			oi, known := s.calls[k]
			if !known {
				buf = s.closeItem(buf)
				empty := ""
				s.resp.Output = append(s.resp.Output, ROutput{ID: "fc_" + newID(), Type: "function_call", Status: "in_progress",
					CallID: toolCallID(tc.ID), Name: tc.Function.Name, Arguments: &empty})
				oi = len(s.resp.Output) - 1
				s.calls[k], s.open = oi, oi
				args := ""
				s.args[oi] = &args
				buf = s.event(buf, "response.output_item.added", map[string]any{"output_index": oi, "item": s.resp.Output[oi]})
			}
			if tc.Function.Arguments != "" && oi == s.open {
				*s.args[oi] += tc.Function.Arguments
				buf = s.event(buf, "response.function_call_arguments.delta", map[string]any{"item_id": s.resp.Output[oi].ID, "output_index": oi, "delta": tc.Function.Arguments})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason == "length" {
			s.resp.IncompleteDetails = &RIncomplete{Reason: "max_output_tokens"}
		}
	}
	return buf, nil
}

// End completes the response.
func (s *ResponsesStream) End() []byte {
	if s.finished {
		return nil
	}
	s.finished = true
	buf := s.start(nil)
	buf = s.closeItem(buf)
	s.resp.Status = "completed"
	typ := "response.completed"
	if s.resp.IncompleteDetails != nil {
		s.resp.Status, typ = "incomplete", "response.incomplete"
	}
	return s.event(buf, typ, map[string]any{"response": s.resp})
}

// Fail ends the stream with a response.failed event.
func (s *ResponsesStream) Fail(msg string) []byte {
	s.finished = true
	buf := s.start(nil)
	s.resp.Status = "failed"
	s.resp.Error = map[string]string{"code": "server_error", "message": msg}
	return s.event(buf, "response.failed", map[string]any{"response": s.resp})
}

// Usage is the stream's token accounting once it has ended.
func (s *ResponsesStream) Usage() (prompt, completion, cached int) {
	if u := s.resp.Usage; u != nil {
		return u.InputTokens, u.OutputTokens, u.InputTokensDetails.CachedTokens
	}
	return 0, 0, 0
}

package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

type completionRequest struct {
	Model               string          `json:"model"`
	Stream              bool            `json:"stream"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Tools []struct {
		Function struct {
			Name       string `json:"name"`
			Parameters struct {
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
				Required []string `json:"required"`
			} `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

// toolCall is the call a conformant engine must make: with tool_choice
// "required" the first tool, with {"type":"function",…} the named one;
// none otherwise (the sim's answer is text then). Its arguments fill the
// schema's required properties.
func (r *completionRequest) toolCall() (name, args string, ok bool) {
	if len(r.Tools) == 0 || len(r.ToolChoice) == 0 {
		return "", "", false
	}
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	i := -1
	switch {
	case string(r.ToolChoice) == `"required"`:
		i = 0
	case json.Unmarshal(r.ToolChoice, &named) == nil && named.Function.Name != "":
		for k, t := range r.Tools {
			if t.Function.Name == named.Function.Name {
				i = k
			}
		}
	}
	if i < 0 {
		return "", "", false
	}
	t := r.Tools[i].Function
	a := map[string]any{}
	for _, p := range t.Parameters.Required {
		switch t.Parameters.Properties[p].Type {
		case "number", "integer":
			a[p] = 1
		case "boolean":
			a[p] = true
		default:
			a[p] = "sim"
		}
	}
	b, _ := json.Marshal(a)
	return t.Name, string(b), true
}

var words = []string{"Hallo", " from", " the", " simulated", " engine", ",", " one", " token", " at", " a", " time", "."}

// quotedWords are words as JSON strings, for the stream's hand-built events.
var quotedWords = func() [][]byte {
	q := make([][]byte, len(words))
	for i, w := range words {
		q[i], _ = json.Marshal(w)
	}
	return q
}()

// done counts a finished request and crashes the process when
// --crash-after says so.
func (s *server) done() {
	n := s.served.Add(1)
	if s.o.CrashAfter > 0 && n >= int64(s.o.CrashAfter) {
		s.crashMu.Lock() // never unlocked: we exit
		s.log.Printf("sim: crashing after %d requests (--crash-after)", n)
		os.Exit(3)
	}
}

func (s *server) completion(chat bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// When the request arrived and when the sim turned ready: the
		// benchmark's cold-start figure is the difference.
		w.Header().Set("X-Sim-Received-Unix-Ns", strconv.FormatInt(time.Now().UnixNano(), 10))
		w.Header().Set("X-Sim-Ready-Unix-Ns", strconv.FormatInt(s.readyNS.Load(), 10))
		s.total.Add(1)
		if s.notReady(w) {
			return
		}
		var req completionRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
			return
		}
		n := s.o.Tokens
		for _, p := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
			if p != nil && *p > 0 && *p < n {
				n = *p
			}
		}
		finish := "stop"
		if n < s.o.Tokens {
			finish = "length"
		}
		prompt := len(strings.Fields(string(req.Messages) + string(req.Prompt)))
		s.running.Add(1)
		defer s.running.Add(-1)
		defer s.done()
		id := fmt.Sprintf("sim-%d", s.total.Load())
		created := time.Now().Unix()
		usage := map[string]int{"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
		ctx := r.Context()
		if name, args, ok := req.toolCall(); ok && chat {
			s.callTool(ctx, w, req.Stream, id, created, name, args, usage)
			return
		}
		if !req.Stream {
			if !sleepCtx(ctx, s.o.TTFT+time.Duration(n-1)*s.o.ITL) {
				return
			}
			var text strings.Builder
			for i := 0; i < n; i++ {
				text.WriteString(words[i%len(words)])
			}
			s.tokens.Add(int64(n))
			choice := map[string]any{"index": 0, "finish_reason": finish}
			obj := "text_completion"
			if chat {
				obj = "chat.completion"
				choice["message"] = map[string]any{"role": "assistant", "content": text.String()}
			} else {
				choice["text"] = text.String()
			}
			writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": obj, "created": created,
				"model": s.o.Model, "choices": []any{choice}, "usage": usage})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		// The usage chunk comes only when asked for, as from vLLM, SGLang
		// and llama.cpp.
		if req.StreamOptions == nil || !req.StreamOptions.IncludeUsage {
			usage = nil
		}
		s.stream(ctx, w, streamHead{chat: chat, id: id, created: created, model: s.o.Model}, n, finish, usage)
	}
}

// streamHead is what every event of one stream repeats.
type streamHead struct {
	chat    bool
	id      string
	created int64
	model   string
}

// stream sends n token events, a usage event and [DONE]. Token i is due at
// TTFT + i×ITL from the start, as a GPU's steady decode produces them:
// time spent writing (or a busy CPU) does not stretch the stream, so a
// benchmark sees the pace it asked for. Each event is appended by hand
// into one buffer: with hundreds of streams the sim must cost less CPU
// than the gateway it is measured against.
func (s *server) stream(ctx context.Context, w http.ResponseWriter, h streamHead, n int, finish string, usage map[string]int) {
	fl, _ := w.(http.Flusher)
	obj := "text_completion"
	if h.chat {
		obj = "chat.completion.chunk"
	}
	tail, _ := json.Marshal(map[string]any{"created": h.created, "id": h.id, "model": h.model, "object": obj})
	tail = tail[1:] // `"created":…}`: each event is {"choices":[…],` + tail
	buf := make([]byte, 0, 512)
	send := func(choice []byte, extra []byte) bool {
		buf = append(buf[:0], `data: {"choices":[`...)
		buf = append(buf, choice...)
		buf = append(buf, "],"...)
		if extra != nil {
			buf = append(buf, extra...)
			buf = append(buf, ',')
		}
		if s.o.StampEvents {
			// A benchmark's clock on the same machine subtracts this
			// from the arrival: the event's delivery time.
			buf = append(buf, tail[:len(tail)-1]...)
			buf = append(buf, `,"sim_unix_ns":`...)
			buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
			buf = append(buf, '}')
		} else {
			buf = append(buf, tail...)
		}
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	began := time.Now()
	var choice []byte
	for i := 0; i < n; i++ {
		if !sleepCtx(ctx, time.Until(began.Add(s.o.TTFT+time.Duration(i)*s.o.ITL))) {
			return
		}
		word := quotedWords[i%len(quotedWords)]
		fr := []byte("null")
		if i == n-1 {
			fr, _ = json.Marshal(finish)
		}
		if h.chat {
			choice = append(choice[:0], `{"delta":{"content":`...)
			choice = append(choice, word...)
			if i == 0 {
				choice = append(choice, `,"role":"assistant"`...)
			}
			choice = append(choice, '}')
		} else {
			choice = append(choice[:0], `{"text":`...)
			choice = append(choice, word...)
		}
		choice = append(choice, `,"finish_reason":`...)
		choice = append(choice, fr...)
		choice = append(choice, `,"index":0}`...)
		if !send(choice, nil) {
			return
		}
		s.tokens.Add(1)
	}
	if usage != nil {
		u, _ := json.Marshal(usage)
		send(nil, append([]byte(`"usage":`), u...))
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

// callTool answers with one tool call, whole or (streamed) in fragments
// as vLLM sends them: the call's name first, its arguments after.
func (s *server) callTool(ctx context.Context, w http.ResponseWriter, stream bool, id string, created int64, name, args string, usage map[string]int) {
	if !sleepCtx(ctx, s.o.TTFT) {
		return
	}
	callID := "chatcmpl-tool-" + id
	if !stream {
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "chat.completion", "created": created, "model": s.o.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "tool_calls", "message": map[string]any{"role": "assistant", "content": nil,
				"tool_calls": []any{map[string]any{"id": callID, "type": "function", "function": map[string]string{"name": name, "arguments": args}}}}}},
			"usage": usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	chunk := func(delta any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": s.o.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	chunk(map[string]any{"role": "assistant", "tool_calls": []any{map[string]any{"index": 0, "id": callID, "type": "function",
		"function": map[string]string{"name": name, "arguments": ""}}}}, nil)
	half := len(args) / 2
	for _, part := range []string{args[:half], args[half:]} {
		chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]string{"arguments": part}}}}, nil)
	}
	chunk(map[string]any{}, "tool_calls")
	fmt.Fprint(w, "data: [DONE]\n\n")
	s.tokens.Add(int64(usage["completion_tokens"]))
}

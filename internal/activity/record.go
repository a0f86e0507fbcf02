// Package activity keeps gantry's activity log: one record per gateway
// request — what was asked and served, by which key, the status, the
// token counts the engine reported, time to first token, duration and
// speed — in a bounded store under <root>/state/activity, with retention
// by age and by rows. Recording costs the request path a copy of the
// answer's tail and a channel send; parsing and writing happen on the
// store's own goroutine.
package activity

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Record is one gateway request, as the log keeps it.
type Record struct {
	Time time.Time `json:"time"`
	// Route is the path asked for (/v1/chat/completions, /v1/messages …).
	Route string `json:"route"`
	// Model is the name the request asked for; Served the configured
	// model that answered (another when a fallback served or an alias or
	// preset was asked for); Preset names the preset used.
	Model    string `json:"model"`
	Served   string `json:"served,omitempty"`
	Preset   string `json:"preset,omitempty"`
	Fallback bool   `json:"fallback,omitempty"`
	// Key names the API key used ("key 2", "admin key 1"), never the key.
	Key    string `json:"key,omitempty"`
	Status int    `json:"status"`
	// Error is the error's code (model_not_found, upstream_error …).
	Error  string  `json:"error,omitempty"`
	Stream bool    `json:"stream,omitempty"`
	Tokens *Tokens `json:"tokens,omitempty"`
	// TTFTMS is the time to the first byte of the answer.
	TTFTMS     float64 `json:"ttft_ms"`
	DurationMS float64 `json:"duration_ms"`
	// TokensPerSecond is completion tokens over the time after the first
	// byte (the decode speed a client sees); 0 when unknown.
	TokensPerSecond float64 `json:"tokens_per_second,omitempty"`
	// Cold says the request waited for its model to load (or its slot to
	// switch); WaitedMS how long.
	Cold     bool    `json:"cold,omitempty"`
	WaitedMS float64 `json:"waited_ms,omitempty"`
	// HeldMS is how long the request held its engine (from its lease to
	// its end): the engine-seconds usage counts.
	HeldMS float64 `json:"held_ms,omitempty"`
	// Cut says a field was longer than the log keeps (MaxName, MaxRoute):
	// it holds its start, ending in the Cut mark.
	Cut bool `json:"cut,omitempty"`
}

// The most of a client's (or an engine's) text one record keeps: a
// request naming a megabyte model must not make a megabyte record.
const (
	MaxName  = 256 // model, served, preset, key, error
	MaxRoute = 512
	// Cut ends a field that was cut.
	Cut = "…"
)

// cut bounds every field a client or an engine chose, marking the record
// when one was cut. The kept start is a copy: the record must not hold
// the whole string's memory while it waits for the writer.
func (r *Record) cut() {
	for _, f := range []struct {
		v   *string
		max int
	}{{&r.Model, MaxName}, {&r.Served, MaxName}, {&r.Preset, MaxName}, {&r.Key, MaxName}, {&r.Error, MaxName}, {&r.Route, MaxRoute}} {
		if len(*f.v) > f.max {
			*f.v = cutString(*f.v, f.max)
			r.Cut = true
		}
	}
}

// cutString is s's start, at a rune's edge, with the Cut mark: at most n
// bytes in all.
func cutString(s string, n int) string {
	n -= len(Cut)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n]) + Cut
}

// Tokens are the engine's own counts of one answer.
type Tokens struct {
	Prompt     int `json:"prompt"`
	Completion int `json:"completion"`
	Cached     int `json:"cached,omitempty"`
}

// Pending is a finished request whose record is not made yet: the store's
// goroutine reads the usage from Tail (the last bytes of the answer) and
// the error code from ErrorBody.
type Pending struct {
	Record
	// Tail is the end of the answer as the client got it (its usage is
	// there: a plain answer's "usage", a stream's last chunk, Ollama's
	// final line), unless Record.Tokens is set already.
	Tail []byte
	// ErrorBody is the start of an error answer.
	ErrorBody []byte
	// TTFT and Duration are turned into the record's milliseconds.
	TTFT, Duration, Waited, Held time.Duration
}

// Finish makes the record: the usage read from the tail, the error code
// from the error body, the speed from both times.
func (p *Pending) Finish() Record {
	r := p.Record
	r.TTFTMS = ms(p.TTFT)
	r.DurationMS = ms(p.Duration)
	if p.Waited > 0 {
		r.WaitedMS = ms(p.Waited)
	}
	if p.Held > 0 {
		r.HeldMS = ms(p.Held)
	}
	if r.Tokens == nil && len(p.Tail) > 0 {
		r.Tokens = ParseUsage(p.Tail)
	}
	if r.Tokens != nil && r.Tokens.Completion > 0 {
		if gen := p.Duration - p.TTFT; gen > 0 {
			r.TokensPerSecond = float64(r.Tokens.Completion) / gen.Seconds()
		}
	}
	if r.Status >= 400 && r.Error == "" && len(p.ErrorBody) > 0 {
		r.Error = errorCode(p.ErrorBody)
	}
	r.cut()
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// usage is every shape of token accounting gantry's answers carry: OpenAI
// chat and completions, the Responses API and Anthropic's Messages.
type usage struct {
	PromptTokens     *int `json:"prompt_tokens"`
	CompletionTokens *int `json:"completion_tokens"`
	InputTokens      *int `json:"input_tokens"`
	OutputTokens     *int `json:"output_tokens"`
	CacheRead        int  `json:"cache_read_input_tokens"`
	PromptDetails    struct {
		Cached int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	InputDetails struct {
		Cached int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
}

var (
	usageKey      = []byte(`"usage"`)
	promptEvalKey = []byte(`"prompt_eval_count"`)
)

// ParseUsage finds the token counts at the end of an answer: the last
// "usage" object (OpenAI, Responses, Anthropic), or Ollama's
// prompt_eval_count and eval_count. Nil when there are none.
func ParseUsage(tail []byte) *Tokens {
	for end := len(tail); end > 0; {
		i := bytes.LastIndex(tail[:end], usageKey)
		if i < 0 {
			break
		}
		end = i
		rest := bytes.TrimLeft(tail[i+len(usageKey):], " \t\r\n")
		if len(rest) == 0 || rest[0] != ':' {
			continue
		}
		var u usage
		if json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&u) != nil {
			continue // null, or cut at the tail's start
		}
		switch {
		case u.PromptTokens != nil || u.CompletionTokens != nil:
			return &Tokens{Prompt: deref(u.PromptTokens), Completion: deref(u.CompletionTokens), Cached: u.PromptDetails.Cached}
		case u.InputTokens != nil || u.OutputTokens != nil:
			return &Tokens{Prompt: deref(u.InputTokens), Completion: deref(u.OutputTokens), Cached: u.CacheRead + u.InputDetails.Cached}
		}
	}
	if i := bytes.LastIndex(tail, promptEvalKey); i >= 0 {
		// Ollama's final object: find its start and read it whole.
		if j := bytes.LastIndexByte(tail[:i], '{'); j >= 0 {
			var o struct {
				Prompt int `json:"prompt_eval_count"`
				Eval   int `json:"eval_count"`
			}
			if json.NewDecoder(bytes.NewReader(tail[j:])).Decode(&o) == nil {
				return &Tokens{Prompt: o.Prompt, Completion: o.Eval}
			}
		}
	}
	return nil
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// errorCode reads the code of an error answer in OpenAI's shape, or the
// type in Anthropic's.
func errorCode(b []byte) string {
	var e struct {
		Error struct {
			Code any    `json:"code"`
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	if s, ok := e.Error.Code.(string); ok && s != "" {
		return s
	}
	return e.Error.Type
}

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
	// TokensPerSecond is the answer's decode speed: the engine's own
	// timing when the answer carries it (llama-server's timings, Ollama's
	// eval_count/eval_duration), else completion tokens over the time
	// after the first byte of a stream, else over the whole request; 0
	// when the interval is too short to mean anything (see Pending.rate).
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
	r.TokensPerSecond = p.rate(r.Tokens)
	if r.Status >= 400 && r.Error == "" && len(p.ErrorBody) > 0 {
		r.Error = errorCode(p.ErrorBody)
	}
	r.cut()
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// MinRateInterval is the shortest interval a rate is taken over. A plain
// answer arrives in one piece, so the time after its first byte is a few
// microseconds: tokens over that read 359,332 tok/s. Below this the rate
// is unknown, not huge.
const MinRateInterval = 20 * time.Millisecond

// rate is the decode speed of the answer: the engine's own timing when
// the tail carries it; else, for a stream, completion tokens over the
// time after its first byte; else (a plain answer, or a stream that came
// at once) over the whole request. 0 when no interval is long enough.
func (p *Pending) rate(t *Tokens) float64 {
	if n, d := EngineTiming(p.Tail); n > 0 && d >= MinRateInterval {
		return float64(n) / d.Seconds()
	}
	if t == nil || t.Completion <= 0 {
		return 0
	}
	over := p.Duration
	if gen := p.Duration - p.TTFT; p.Stream && gen >= MinRateInterval {
		over = gen
	}
	if over < MinRateInterval {
		return 0
	}
	return float64(t.Completion) / over.Seconds()
}

var (
	timingsKey      = []byte(`"timings"`)
	evalDurationKey = []byte(`"eval_duration"`)
)

// EngineTiming reads the engine's own count and time of the generated
// tokens from the end of an answer: llama-server's "timings" object
// (predicted_n, predicted_ms: get_formated_timings in llama.cpp's
// tools/server/server.cpp) or Ollama's final object (eval_count and
// eval_duration in nanoseconds: api/types.go Metrics). 0, 0 when the
// answer has neither.
func EngineTiming(tail []byte) (tokens int, took time.Duration) {
	if i := bytes.LastIndex(tail, timingsKey); i >= 0 {
		rest := bytes.TrimLeft(tail[i+len(timingsKey):], " \t\r\n")
		var t struct {
			N  int     `json:"predicted_n"`
			MS float64 `json:"predicted_ms"`
		}
		if len(rest) > 0 && rest[0] == ':' && json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&t) == nil && t.N > 0 {
			return t.N, time.Duration(t.MS * float64(time.Millisecond))
		}
	}
	if i := bytes.LastIndex(tail, evalDurationKey); i >= 0 {
		if j := bytes.LastIndexByte(tail[:i], '{'); j >= 0 {
			var o struct {
				N int   `json:"eval_count"`
				D int64 `json:"eval_duration"`
			}
			if json.NewDecoder(bytes.NewReader(tail[j:])).Decode(&o) == nil && o.N > 0 {
				return o.N, time.Duration(o.D)
			}
		}
	}
	return 0, 0
}

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

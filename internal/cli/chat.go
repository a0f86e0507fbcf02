package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/client"
)

// ChatResult is `gantry chat --json`.
type ChatResult struct {
	Model            string  `json:"model"`
	Content          string  `json:"content"`
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	TTFTMS           float64 `json:"ttft_ms"`
	Seconds          float64 `json:"seconds"`
	TokensPerSecond  float64 `json:"tokens_per_second"`
	ServedBy         string  `json:"served_by"`
}

func runChat(e *env, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	system := fs.String("system", "", "a system prompt (none by default)")
	maxTokens := fs.Int("max-tokens", 0, "limit the answer's length")
	asJSON := fs.Bool("json", false, "print one JSON object at the end instead of streaming text")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: gantry chat MODEL PROMPT   (PROMPT - reads standard input)")
	}
	body, err := chatBody(e, pos[0], pos[1], *system, *maxTokens)
	if err != nil {
		return err
	}
	began := time.Now()
	cl, err := cf.client()
	if err != nil {
		return err
	}
	resp, err := cl.Post(e.ctx, "/v1/chat/completions", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	cs := &chatStream{res: ChatResult{Model: pos[0], ServedBy: resp.Header.Get("X-Gantry-Served-By")}}
	if !*asJSON {
		cs.echo = e.stdout
	}
	err = client.ReadSSE(resp.Body, cs.event)
	if err == nil {
		err = cs.err
	}
	if err != nil {
		if !*asJSON {
			fmt.Fprintln(e.stdout)
		}
		return fmt.Errorf("the answer was cut: %w", err)
	}
	res := cs.result(began, time.Now())
	if *asJSON {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintln(e.stdout)
	by := ""
	if res.ServedBy != "" && res.ServedBy != pos[0] {
		by = " by " + res.ServedBy
	}
	fmt.Fprintf(e.stderr, "— %d tokens in %.2fs%s: first after %.0f ms, %.1f tokens/s\n", res.CompletionTokens, res.Seconds, by, res.TTFTMS, res.TokensPerSecond)
	return nil
}

// chatBody is the streamed chat request for model: the prompt ("-" reads
// standard input) after the system prompt when there is one, usage asked
// for in the stream.
func chatBody(e *env, model, prompt, system string, maxTokens int) (map[string]any, error) {
	if prompt == "-" {
		b, err := io.ReadAll(io.LimitReader(e.stdin, 16<<20))
		if err != nil {
			return nil, err
		}
		prompt = strings.TrimRight(string(b), "\n")
	}
	msgs := []map[string]string{}
	if system != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": system})
	}
	msgs = append(msgs, map[string]string{"role": "user", "content": prompt})
	body := map[string]any{"model": model, "messages": msgs, "stream": true,
		"stream_options": map[string]bool{"include_usage": true}}
	if maxTokens > 0 {
		body["max_tokens"] = maxTokens
	}
	return body, nil
}

// chatStream reads an answer's server-sent chunks: the text (written to
// echo as it comes, when set), when the first came, how many, the usage,
// and an error event.
type chatStream struct {
	res    ChatResult
	echo   io.Writer
	text   strings.Builder
	first  time.Time
	chunks int
	err    error
}

// event reads one event's data.
func (cs *chatStream) event(_, data string) {
	if data == "[DONE]" {
		return
	}
	var ch struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(data), &ch) != nil {
		return
	}
	if ch.Error != nil {
		cs.err = errors.New(ch.Error.Message)
		return
	}
	if ch.Usage != nil {
		cs.res.PromptTokens, cs.res.CompletionTokens = ch.Usage.PromptTokens, ch.Usage.CompletionTokens
	}
	for _, c := range ch.Choices {
		if c.Delta.Content == "" {
			continue
		}
		if cs.first.IsZero() {
			cs.first = time.Now()
		}
		cs.chunks++
		cs.text.WriteString(c.Delta.Content)
		if cs.echo != nil {
			fmt.Fprint(cs.echo, c.Delta.Content)
		}
	}
}

// result is the whole answer with its timings, for a request sent at
// began and ended at end (chunks count as tokens when the engine sent no
// usage).
func (cs *chatStream) result(began, end time.Time) ChatResult {
	res := cs.res
	res.Content = cs.text.String()
	res.Seconds = end.Sub(began).Seconds()
	if res.CompletionTokens == 0 {
		res.CompletionTokens = cs.chunks
	}
	if !cs.first.IsZero() {
		res.TTFTMS = float64(cs.first.Sub(began).Microseconds()) / 1000
		// The decode speed after the first token; a stream that came at
		// once (a proxy that buffers) is timed over the whole request,
		// never over a near-zero interval (activity.MinRateInterval).
		switch gen := end.Sub(cs.first); {
		case gen >= activity.MinRateInterval && res.CompletionTokens > 1:
			res.TokensPerSecond = float64(res.CompletionTokens-1) / gen.Seconds()
		case end.Sub(began) >= activity.MinRateInterval:
			res.TokensPerSecond = float64(res.CompletionTokens) / end.Sub(began).Seconds()
		}
	}
	return res
}

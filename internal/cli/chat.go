package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gantryhq/gantry/internal/check"
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
	prompt := pos[1]
	if prompt == "-" {
		b, err := io.ReadAll(io.LimitReader(e.stdin, 16<<20))
		if err != nil {
			return err
		}
		prompt = strings.TrimRight(string(b), "\n")
	}
	msgs := []map[string]string{}
	if *system != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": *system})
	}
	msgs = append(msgs, map[string]string{"role": "user", "content": prompt})
	body := map[string]any{"model": pos[0], "messages": msgs, "stream": true,
		"stream_options": map[string]bool{"include_usage": true}}
	if *maxTokens > 0 {
		body["max_tokens"] = *maxTokens
	}
	began := time.Now()
	resp, err := cf.client().Post(e.ctx, "/v1/chat/completions", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	res := ChatResult{Model: pos[0], ServedBy: resp.Header.Get("X-Gantry-Served-By")}
	var text strings.Builder
	var first time.Time
	chunks := 0
	var streamErr error
	err = client.ReadSSE(resp.Body, func(_, data string) {
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
			streamErr = errors.New(ch.Error.Message)
			return
		}
		if ch.Usage != nil {
			res.PromptTokens, res.CompletionTokens = ch.Usage.PromptTokens, ch.Usage.CompletionTokens
		}
		for _, c := range ch.Choices {
			if c.Delta.Content == "" {
				continue
			}
			if first.IsZero() {
				first = time.Now()
			}
			chunks++
			text.WriteString(c.Delta.Content)
			if !*asJSON {
				fmt.Fprint(e.stdout, c.Delta.Content)
			}
		}
	})
	if err == nil {
		err = streamErr
	}
	if err != nil {
		if !*asJSON {
			fmt.Fprintln(e.stdout)
		}
		return fmt.Errorf("the answer was cut: %w", err)
	}
	end := time.Now()
	res.Content = text.String()
	res.Seconds = end.Sub(began).Seconds()
	if res.CompletionTokens == 0 {
		res.CompletionTokens = chunks
	}
	if !first.IsZero() {
		res.TTFTMS = float64(first.Sub(began).Microseconds()) / 1000
		if gen := end.Sub(first).Seconds(); gen > 0 && res.CompletionTokens > 1 {
			res.TokensPerSecond = float64(res.CompletionTokens-1) / gen
		}
	}
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

func runCheck(e *env, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	all := fs.Bool("all", false, "start on-demand models that are not running, to check them too")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	var rep check.Report
	if err := cf.client().Check(e.ctx, *all, &rep); err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tKIND\tNAME\tTEST\tHEALTH\tTEST TIME\tDETAIL")
		for _, it := range rep.Items {
			detail := it.Detail
			if it.Diagnosis != "" {
				detail += " — diagnosis: " + it.Diagnosis
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Status, it.Kind, it.Name, orDash(it.Test), msOrDash(it.HealthMS), msOrDash(it.TestMS), detail)
		}
		tw.Flush()
	}
	if !rep.OK {
		return &ExitError{Code: 1, Err: errors.New("check failed (see the lines marked fail)")}
	}
	return nil
}

func msOrDash(ms float64) string {
	if ms <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", ms)
}

func runEvents(e *env, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print each event as a JSON line")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	err := cf.client().Events(e.ctx, func(kind, data string) {
		if *asJSON {
			fmt.Fprintln(e.stdout, data)
			return
		}
		var ev struct {
			Kind, Model, From, To, Reason, Diagnosis string
			Time                                     time.Time
		}
		json.Unmarshal([]byte(data), &ev) //nolint:errcheck // shown raw below if odd
		line := fmt.Sprintf("%s  %-8s %-14s", ev.Time.Local().Format("15:04:05.000"), ev.Kind, ev.Model)
		if ev.From != "" || ev.To != "" {
			line += fmt.Sprintf(" %s → %s", orDash(ev.From), orDash(ev.To))
		}
		if ev.Reason != "" {
			line += "  " + ev.Reason
		}
		if ev.Diagnosis != "" {
			line += "  [" + ev.Diagnosis + "]"
		}
		fmt.Fprintln(e.stdout, line)
	})
	if errors.Is(err, context.Canceled) || e.ctx.Err() != nil {
		return nil
	}
	return err
}

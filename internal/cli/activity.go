package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/client"
)

func runActivity(e *env, args []string) error {
	fs := flag.NewFlagSet("activity", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	follow := fs.Bool("f", false, "follow: print each new request as it finishes")
	fs.BoolVar(follow, "follow", false, "same as -f")
	model := fs.String("model", "", "only this model (as asked for or as served)")
	since := fs.String("since", "", "from this long ago (90m, 24h, 7d), a date (2026-11-30) or an RFC 3339 time (default 24h; with --by 7d, as GET /api/usage)")
	n := fs.Int("n", 20, "number of newest records to show")
	asJSON := fs.Bool("json", false, "print JSON: the records and totals, or with -f one record per line")
	by := fs.String("by", "", "totals by key, model or day: requests, tokens in and out, engine-seconds held")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("usage: gantry activity [-f] [--model M] [--since S] [-n N] [--by key|model|day] [--json]")
	}
	if *by != "" && (*follow || *model != "") {
		return usagef("--by totals everything since --since; it takes neither -f nor --model")
	}
	if *n < 1 {
		return usagef("-n must be at least 1")
	}
	switch {
	case *since != "":
	case *by != "":
		*since = "7d" // GET /api/usage's default: usage is a week's question
	default:
		*since = "24h"
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *by != "" {
		return printUsage(e, c, *by, *since, *asJSON)
	}
	if *follow {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		if !*asJSON {
			activityHeader(tw)
			tw.Flush()
		}
		err := c.FollowActivity(e.ctx, *model, func(r activity.Record) {
			if *asJSON {
				writeJSONLine(e.stdout, r)
				return
			}
			activityRow(tw, r)
			tw.Flush()
		})
		if errors.Is(err, context.Canceled) || e.ctx.Err() != nil {
			return nil
		}
		return err
	}
	q := url.Values{"since": {*since}, "limit": {strconv.Itoa(*n)}}
	if *model != "" {
		q.Set("model", *model)
	}
	res, err := c.Activity(e.ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, res)
	}
	printActivity(e.stdout, res, *since)
	return nil
}

// printUsage prints the totals by key, model or day.
func printUsage(e *env, c *client.Client, by, since string, asJSON bool) error {
	switch by {
	case activity.ByKey, activity.ByModel, activity.ByDay:
	default:
		return usagef("--by %s: use key, model or day", by)
	}
	u, err := c.Usage(e.ctx, by, since)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, u)
	}
	if len(u.Rows) == 0 {
		fmt.Fprintf(e.stdout, "no requests since %s\n", since)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tREQUESTS\tERRORS\tTOKENS IN\tTOKENS OUT\tENGINE-SECONDS\n", strings.ToUpper(by))
	var sum activity.UsageRow
	for _, r := range u.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\n", r.Key+r.Model+r.Day, r.Requests, r.Errors, r.PromptTokens, r.CompletionTokens, r.EngineSeconds)
		sum.Requests, sum.Errors = sum.Requests+r.Requests, sum.Errors+r.Errors
		sum.PromptTokens, sum.CompletionTokens = sum.PromptTokens+r.PromptTokens, sum.CompletionTokens+r.CompletionTokens
		sum.EngineSeconds += r.EngineSeconds // the Counts add up field by field
	}
	fmt.Fprintf(tw, "total since %s\t%d\t%d\t%d\t%d\t%.1f\n", since, sum.Requests, sum.Errors, sum.PromptTokens, sum.CompletionTokens, sum.EngineSeconds)
	return tw.Flush()
}

func activityHeader(w io.Writer) {
	fmt.Fprintln(w, "TIME\tMODEL\tROUTE\tKEY\tSTATUS\tTOKENS IN/OUT\tTTFT\tTIME\tTOK/S\tNOTE")
}

// activityRow is one record as a line: the model as asked and, when
// another answered, → the one that served.
func activityRow(w io.Writer, r activity.Record) {
	model := r.Model
	if r.Served != "" && r.Served != r.Model {
		model += " → " + r.Served
	}
	tokens, tps := "-", "-"
	if r.Tokens != nil {
		tokens = fmt.Sprintf("%d/%d", r.Tokens.Prompt, r.Tokens.Completion)
		if r.Tokens.Cached > 0 {
			tokens += fmt.Sprintf(" (%d cached)", r.Tokens.Cached)
		}
	}
	if r.TokensPerSecond > 0 {
		tps = fmt.Sprintf("%.1f", r.TokensPerSecond)
	}
	var note []string
	if r.Cold {
		note = append(note, fmt.Sprintf("cold start %s", msDur(r.WaitedMS)))
	}
	if r.Fallback {
		note = append(note, "fallback")
	}
	if r.Preset != "" {
		note = append(note, "preset")
	}
	if r.Stream {
		note = append(note, "stream")
	}
	status := strconv.Itoa(r.Status)
	if r.Error != "" {
		status += " " + r.Error
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format("01-02 15:04:05"), trunc(model, 40), r.Route,
		orDash(r.Key), status, tokens, msDur(r.TTFTMS), msDur(r.DurationMS), tps, joinOrDash(note))
}

func printActivity(w io.Writer, res activity.Result, since string) {
	defer func() {
		if res.Dropped > 0 {
			fmt.Fprintf(w, "warning: %d records were dropped (the disk fell behind)\n", res.Dropped)
		}
		if res.Skipped > 0 {
			fmt.Fprintf(w, "warning: %d lines of the activity log could not be read (corrupt, torn or over-long) and were skipped\n", res.Skipped)
		}
	}()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	activityHeader(tw)
	for i := len(res.Records) - 1; i >= 0; i-- { // oldest first, as a log reads
		activityRow(tw, res.Records[i])
	}
	tw.Flush()
	if len(res.Totals) == 0 {
		fmt.Fprintf(w, "no requests since %s\n", since)
		return
	}
	fmt.Fprintf(w, "\ntotals since %s:\n", since)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tREQUESTS\tERRORS\tTOKENS IN\tTOKENS OUT\tCOLD STARTS\tAVG TTFT\tAVG TOK/S")
	for _, t := range res.Totals {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%.1f\n", t.Model, t.Requests, t.Errors, t.PromptTokens, t.CompletionTokens,
			t.Cold, msDur(t.AvgTTFTMS), t.AvgTokensPerSec)
	}
	tw.Flush()
}

func msDur(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

func joinOrDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	out := s[0]
	for _, x := range s[1:] {
		out += ", " + x
	}
	return out
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/gantryhq/gantry/internal/status"
)

func runCheck(e *env, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	all := fs.Bool("all", false, "start on-demand models that are not running, to check them too")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	var rep status.CheckReport
	cl, err := cf.client()
	if err != nil {
		return err
	}
	if err := cl.Check(e.ctx, *all, &rep); err != nil {
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
	cl, err := cf.client()
	if err != nil {
		return err
	}
	err = cl.Events(e.ctx, func(kind, data string) {
		if *asJSON {
			fmt.Fprintln(e.stdout, data)
			return
		}
		var ev status.Event
		json.Unmarshal([]byte(data), &ev) //nolint:errcheck // shown raw below if odd
		fmt.Fprintln(e.stdout, eventLine(ev))
	})
	if errors.Is(err, context.Canceled) || e.ctx.Err() != nil {
		return nil
	}
	return err
}

// eventLine is one event as `gantry events` and `gantry top` print it.
func eventLine(ev status.Event) string {
	line := fmt.Sprintf("%s  %-8s %-14s", ev.Time.Local().Format("15:04:05.000"), ev.Kind, ev.Model)
	if ev.Progress != nil {
		line += " " + status.ModelStatus{Progress: ev.Progress}.LoadText()
	}
	if ev.From != "" || ev.To != "" {
		line += fmt.Sprintf(" %s → %s", orDash(ev.From), orDash(ev.To))
	}
	if ev.Reason != "" {
		line += "  " + ev.Reason
	}
	if ev.Diagnosis != "" {
		line += "  [" + ev.Diagnosis + "]"
	}
	return line
}

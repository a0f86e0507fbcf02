package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/client"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/term"
)

// runTop is `gantry top`: a live view of the models (state, load
// progress, in-flight and queued requests, tokens per second), the memory
// budget and the last requests, redrawn from the event stream and the
// activity log as they change. On a terminal it takes the screen and
// quits on q or Ctrl-C; elsewhere it prints one line per change.
func runTop(e *env, args []string) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("usage: gantry top")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	st, err := c.Status(e.ctx)
	if err != nil {
		return err
	}
	ts := &topState{server: c.Base(), st: st}
	if res, err := c.Activity(e.ctx, map[string][]string{"since": {"1m"}, "limit": {"20"}}); err == nil {
		for i := len(res.Records) - 1; i >= 0; i-- {
			ts.add(res.Records[i], time.Now())
		}
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	feed := startTopFeed(ctx, c)

	out, isFile := e.stdout.(*os.File)
	if !isFile || !term.IsTerminal(int(out.Fd())) {
		return topPlain(ctx, e.stdout, feed)
	}
	return topScreen(ctx, cancel, e, out, c, ts, feed)
}

// topFeed is what top hears from the daemon.
type topFeed struct {
	changed chan struct{}        // a state changed: fetch the status again
	events  chan status.Event    // every event (for the plain output)
	records chan activity.Record // finished requests
	errs    chan error           // a stream ended
}

// startTopFeed follows /api/events and the activity log. Without the
// activity log (it is off) the events' request timings stand in.
func startTopFeed(ctx context.Context, c *client.Client) *topFeed {
	f := &topFeed{changed: make(chan struct{}, 1), events: make(chan status.Event, 64),
		records: make(chan activity.Record, 64), errs: make(chan error, 2)}
	useEvents := make(chan bool, 1)
	go func() {
		err := c.FollowActivity(ctx, "", func(r activity.Record) { f.records <- r })
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Code == "activity_off" {
			useEvents <- true
			return
		}
		useEvents <- false
		f.errs <- err
	}()
	go func() {
		requests := false
		f.errs <- c.Events(ctx, func(kind, data string) {
			select {
			case requests = <-useEvents:
			default:
			}
			var ev status.Event
			if json.Unmarshal([]byte(data), &ev) != nil {
				return
			}
			if ev.Kind == status.KindRequest {
				if requests {
					f.records <- activity.Record{Time: ev.Time, Model: ev.Model, Route: ev.Reason, Status: ev.Code,
						TTFTMS: ev.TTFBMS, DurationMS: ev.DurationMS}
				}
				return
			}
			select {
			case f.events <- ev:
			default:
			}
			select {
			case f.changed <- struct{}{}:
			default:
			}
		})
	}()
	return f
}

// streamEnd is what the end of the daemon's streams (err from the feed)
// means for gantry top: nothing when top was stopped or the stream ended
// cleanly, else the error.
func streamEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// topPlain prints a line per state change and per request until ctx ends.
func topPlain(ctx context.Context, w io.Writer, f *topFeed) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-f.errs:
			return streamEnd(ctx, err)
		case ev := <-f.events:
			fmt.Fprintln(w, eventLine(ev))
		case r := <-f.records:
			fmt.Fprintln(w, "request  "+requestLine(r))
		case <-f.changed:
		}
	}
}

// topScreen draws the view on the terminal out until q, Ctrl-C or ctx.
func topScreen(ctx context.Context, cancel func(), e *env, out *os.File, c *client.Client, ts *topState, f *topFeed) error {
	if in, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		if restore, err := term.MakeRaw(int(in.Fd())); err == nil {
			defer restore() //nolint:errcheck // the terminal is gone
			go func() {
				b := make([]byte, 16)
				for {
					n, err := in.Read(b)
					if err != nil {
						return
					}
					if s := string(b[:n]); strings.ContainsAny(s, "qQ\x03\x04") {
						cancel()
						return
					}
				}
			}()
		}
	}
	// The alternate screen: the user's terminal comes back as it was.
	fmt.Fprint(out, "\x1b[?1049h\x1b[?25l")
	defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	draw := func() {
		w, h, err := term.Size(int(out.Fd()))
		if err != nil || w == 0 {
			w, h = 100, 30
		}
		var b strings.Builder
		b.WriteString("\x1b[H")
		for _, l := range ts.render(w, h, time.Now()) {
			b.WriteString(l)
			b.WriteString("\x1b[K\n")
		}
		b.WriteString("\x1b[J")
		io.WriteString(out, b.String()) //nolint:errcheck // the terminal is gone
	}
	refresh := func() {
		if st, err := c.Status(ctx); err == nil {
			ts.st = st
		}
	}
	draw()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-f.errs:
			if err = streamEnd(ctx, err); err != nil {
				return fmt.Errorf("gantry top: the daemon's stream ended: %w", err)
			}
			return nil
		case r := <-f.records:
			ts.add(r, time.Now())
			refresh() // in-flight counts moved
		case <-f.events:
		case <-f.changed:
			refresh()
		case <-tick.C:
			refresh()
		}
		draw()
	}
}

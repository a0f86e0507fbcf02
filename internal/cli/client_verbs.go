package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gantryhq/gantry/internal/client"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// clientFlags are the flags every client verb takes.
type clientFlags struct {
	server string
	token  string
	config string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", "", "gantry daemon URL (env GANTRY_SERVER; default: the config's listen)")
	fs.StringVar(&f.token, "token", "", "admin or API key (env GANTRY_TOKEN)")
	fs.StringVar(&f.config, "config", "", "config file, to find the daemon's address")
}

// client builds the API client of the daemon a verb talks to: --server,
// else $GANTRY_SERVER, else the config's listen address (or, with no
// config at the default place, the demo's); and --token, else
// $GANTRY_TOKEN, else the config's first admin key. A config that cannot
// be read is an error (exit 2, with its problems) unless --server or
// GANTRY_SERVER names the daemon: guessing the default address would talk
// to whatever gantry answers there. The client's errors say which address
// it tried and where that address came from.
func (f *clientFlags) client() (*client.Client, error) {
	server, from := f.server, "--server"
	if server == "" {
		server, from = os.Getenv("GANTRY_SERVER"), "GANTRY_SERVER"
	}
	token := f.token
	if token == "" {
		token = os.Getenv("GANTRY_TOKEN")
	}
	if server != "" && token != "" {
		return client.New(server, token).From(from), nil
	}
	path, _ := configPath(f.config)
	c, demo, err := loadConfig(f.config, true)
	if err != nil {
		if server != "" {
			return client.New(server, token).From(from), nil // named by hand: the config is not needed
		}
		return nil, &ExitError{Code: 2, Err: fmt.Errorf("cannot tell which gantry to talk to: %w\nfix the config, or name the daemon with --server URL (or GANTRY_SERVER)", err)}
	}
	if token == "" {
		token = c.Auth.AdminToken()
	}
	if server == "" {
		server, from = "http://"+dialable(c.Listen), "listen: in "+path
		if demo {
			from = "the demo's address: there is no config at " + path
		}
	}
	return client.New(server, token).From(from), nil
}

// dialable turns a listen address into one a client can dial (0.0.0.0 and
// :: mean this machine).
func dialable(listen string) string {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, p)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func runPS(e *env, args []string) error {
	fs := flag.NewFlagSet("ps", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print /api/status?peers=1 as JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	st, err := cl.StatusAll(e.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, st)
	}
	printStatus(e.stdout, st)
	return nil
}

func printStatus(w io.Writer, st status.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENGINE\tSTATE\tADDRESS\tPID\tMEMORY\tINFLIGHT\tQUEUED\tLAST USED\tNOTE")
	var whole []string // notes the table cuts, printed whole below it
	for _, m := range st.Models {
		pid := "-"
		if m.PID > 0 {
			pid = fmt.Sprint(m.PID)
		}
		last := "-"
		if m.LastUsed != nil {
			last = time.Since(*m.LastUsed).Round(time.Second).String() + " ago"
		}
		note := m.Diagnosis
		switch {
		case note != "":
		case m.Invalid != "":
			note = "invalid: " + m.Invalid
		case m.State == status.Starting && m.Progress != nil:
			note = m.LoadText()
		case m.State == status.Failed || m.State == status.Starting:
			note = strings.TrimSpace(m.Phase + " " + m.Reason)
		}
		if m.Slot != "" {
			note = strings.TrimSpace("slot " + m.Slot + " " + note)
		}
		if m.Rank > 0 {
			note = strings.TrimSpace(fmt.Sprintf("rank %d of %d, led by %s ", m.Rank, len(m.Nodes), m.Nodes[0]) + note)
		}
		state := string(m.State)
		if m.Invalid != "" && (m.State == status.Stopped || m.State == status.Failed) {
			state = "invalid" // stopped or failed in the JSON; it cannot start as configured
		}
		if m.AlwaysOn {
			state += "*" // always-on, by mode or profile
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", m.Name, m.Engine, state, address(m), pid,
			config.FormatBytes(m.MemoryBytes), m.Inflight, m.Queued, last, trunc(note, 80))
		if len(note) > 80 {
			whole = append(whole, m.Name+": "+note)
		}
		for _, r := range m.Ranks {
			rpid := "-"
			if r.PID > 0 {
				rpid = fmt.Sprint(r.PID)
			}
			fmt.Fprintf(tw, "  rank %d @%s\t\t%s\t\t%s\t\t\t\t\t%s\n", r.Rank, r.Node, r.State, rpid, trunc(r.Reason, 80))
		}
	}
	tw.Flush()
	for _, n := range whole {
		fmt.Fprintln(w, n)
	}
	fmt.Fprintf(w, "memory: %s reserved of %s budget (%s total)\n", config.FormatBytes(st.Memory.ReservedBytes),
		config.FormatBytes(st.Memory.BudgetBytes), config.FormatBytes(st.Memory.TotalBytes))
	for _, sl := range st.Slots {
		cur := sl.Current
		if cur == "" {
			cur = "(empty)"
		}
		at := fmt.Sprintf("engine port %d", sl.Port)
		if sl.URL != "" {
			at = sl.URL
		}
		fmt.Fprintf(w, "slot %s (%s): %s; members %s\n", sl.Name, at, cur, strings.Join(sl.Members, ", "))
	}
	if st.Profile != "" {
		fmt.Fprintf(w, "profile: %s\n", st.Profile)
	}
	printPeers(w, st.Peers)
}

// printPeers shows each peer's state and the models it serves.
func printPeers(w io.Writer, ps []status.PeerStatus) {
	for _, p := range ps {
		line := fmt.Sprintf("peer %s (%s): %s", p.Name, p.URL, p.State)
		if p.Error != "" {
			line += " — " + trunc(p.Error, 100)
		}
		fmt.Fprintln(w, line)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, m := range p.Models {
			if m.AliasOf != "" {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t@%s\n", m.Name, m.Engine, m.State, p.Name)
		}
		tw.Flush()
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// modelVerb parses the command line of a client verb that takes one
// MODEL: the client flags, the verb's own (added by more), then the name.
func modelVerb(verb string, args []string, more func(*flag.FlagSet)) (*clientFlags, string, error) {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	cf := &clientFlags{}
	cf.register(fs)
	if more != nil {
		more(fs)
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, "", err
	}
	if len(pos) != 1 {
		return nil, "", usagef("usage: gantry %s MODEL", verb)
	}
	return cf, pos[0], nil
}

func runStart(e *env, args []string) error {
	var asJSON *bool
	cf, name, err := modelVerb("start", args, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print the final status as JSON")
	})
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	m, err := c.Start(e.ctx, name)
	if err != nil {
		return err
	}
	m, err = waitStarted(e, c, m)
	if *asJSON {
		writeJSON(e.stdout, m) //nolint:errcheck // the start's outcome (err) is what the verb returns
	}
	return err
}

// waitStarted polls the model until it is ready or failed, showing its
// progress (see progressView).
func waitStarted(e *env, c *client.Client, m status.ModelStatus) (status.ModelStatus, error) {
	v := newProgressView(e)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		switch m.State {
		case status.Ready:
			v.clear()
			fmt.Fprintf(e.stdout, "%s is ready (%s): %s\n", m.Name, readyIn(m, v.began), doorList(m))
			return m, nil
		case status.Failed, status.Stopped:
			v.clear()
			if m.State == status.Failed {
				m = awaitDiagnosis(e.ctx, c, m)
			}
			return m, didNotStart(m)
		}
		v.show(m)
		select {
		case <-e.ctx.Done():
			v.clear()
			return m, e.ctx.Err()
		case <-tick.C:
		}
		next, err := c.Model(e.ctx, m.Name)
		if err != nil {
			return m, err
		}
		m = next
	}
}

func readyIn(m status.ModelStatus, began time.Time) string {
	if m.StartedAt != nil && m.ReadyAt != nil {
		return "loaded in " + m.ReadyAt.Sub(*m.StartedAt).Round(10*time.Millisecond).String()
	}
	return "waited " + time.Since(began).Round(10*time.Millisecond).String()
}

// didNotStart is the failure `gantry start` reports: gantry's diagnosis —
// cause and fix — on the first line, the engine's own words after it.
func didNotStart(m status.ModelStatus) error {
	if m.Diagnosis == "" {
		return fmt.Errorf("%s did not start: %s\n  log: gantry logs %s", m.Name, m.Reason, m.Name)
	}
	return fmt.Errorf("%s did not start: %s\n  the engine: %s\n  log: gantry logs %s", m.Name, m.Diagnosis, m.Reason, m.Name)
}

// awaitDiagnosis gives the daemon a moment to diagnose a failure it has
// just reported (it reads the engine's log after the state changes): up to
// two seconds, less as soon as the diagnosis is there.
func awaitDiagnosis(ctx context.Context, c *client.Client, m status.ModelStatus) status.ModelStatus {
	deadline := time.Now().Add(2 * time.Second)
	for m.Diagnosis == "" && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return m
		case <-time.After(100 * time.Millisecond):
		}
		next, err := c.Model(ctx, m.Name)
		if err != nil || next.State != status.Failed {
			return m
		}
		m = next
	}
	return m
}

// doorList is where clients reach m, the most direct address first; from
// a daemon that does not say (an older gantry), the engine's port.
func doorList(m status.ModelStatus) string {
	if len(m.Doors) == 0 {
		return fmt.Sprintf("engine port %d", m.Port)
	}
	parts := make([]string, len(m.Doors))
	for i, d := range m.Doors {
		parts[i] = d.String()
	}
	return strings.Join(parts, ", ")
}

// address is the most direct door of m as host:port, for tables.
func address(m status.ModelStatus) string {
	if len(m.Doors) == 0 {
		return fmt.Sprintf("engine :%d", m.Port)
	}
	return strings.TrimSuffix(strings.TrimPrefix(m.Doors[0].URL, "http://"), "/v1")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runStop(e *env, args []string) error {
	var asJSON *bool
	cf, name, err := modelVerb("stop", args, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print the final status as JSON")
	})
	if err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	before, _ := cl.Model(e.ctx, name) // an unknown name: the daemon's answer below says so
	m, err := cl.Stop(e.ctx, name)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, m)
	}
	if before.Name != "" && before.State == status.Stopped {
		fmt.Fprintf(e.stdout, "%s was not running; nothing to stop\n", m.Name)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s stopped\n", m.Name)
	return nil
}

func runLogs(e *env, args []string) error {
	var follow *bool
	var n *int
	cf, name, err := modelVerb("logs", args, func(fs *flag.FlagSet) {
		follow = fs.Bool("f", false, "follow: keep printing new lines")
		fs.BoolVar(follow, "follow", false, "same as -f")
		n = fs.Int("n", 100, "number of last lines to show")
	})
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *follow {
		err := c.FollowLogs(e.ctx, name, *n, func(l string) { fmt.Fprintln(e.stdout, l) })
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	lines, err := c.Logs(e.ctx, name, *n)
	for _, l := range lines {
		fmt.Fprintln(e.stdout, l)
	}
	return err
}

// status is the daemon's status, for verbs that show it when a daemon
// runs and work without one.
func (f *clientFlags) status(ctx context.Context) (status.Status, error) {
	c, err := f.client()
	if err != nil {
		return status.Status{}, err
	}
	return c.Status(ctx)
}

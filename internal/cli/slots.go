package cli

import (
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/client"
	"github.com/gantryhq/gantry/internal/status"
)

func runSwitch(e *env, args []string) error {
	fs := flag.NewFlagSet("switch", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print the new member's status as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: gantry switch SLOT MODEL")
	}
	fmt.Fprintf(e.stderr, "switching slot %s to %s (in-flight requests finish first)…\n", pos[0], pos[1])
	c, err := cf.client()
	if err != nil {
		return err
	}
	m, err := switchShowingProgress(e, c, pos[0], pos[1])
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, m)
	}
	fmt.Fprintf(e.stdout, "slot %s now serves %s: %s\n", pos[0], m.Name, doorList(m))
	return nil
}

func runProfile(e *env, args []string) error {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	none := fs.Bool("none", false, "deactivate the active profile")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("usage: gantry profile [NAME | --none]")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	p, err := c.Profile(e.ctx)
	if len(pos) == 1 || *none {
		name := ""
		if len(pos) == 1 {
			name = pos[0]
		}
		p, err = c.SetProfile(e.ctx, name)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, p)
	}
	names := make([]string, 0, len(p.Profiles))
	for n := range p.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		fmt.Fprintln(e.stdout, "no profiles configured (profiles: in the config)")
	}
	for _, n := range names {
		mark := "  "
		if n == p.Active {
			mark = "* "
		}
		members := strings.Join(p.Profiles[n], ", ")
		if members == "" {
			members = "none (an empty profile: with it active, only models with mode: always-on are)"
		}
		fmt.Fprintf(e.stdout, "%s%s: always-on %s\n", mark, n, members)
	}
	if p.Active == "" && len(names) > 0 {
		fmt.Fprintln(e.stdout, "no profile active")
	}
	return nil
}

// switchShowingProgress asks for the switch (which answers once the new
// member is ready) and meanwhile shows the new member's load.
func switchShowingProgress(e *env, c *client.Client, slot, model string) (status.ModelStatus, error) {
	type result struct {
		m   status.ModelStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := c.Switch(e.ctx, slot, model)
		done <- result{m, err}
	}()
	v := newProgressView(e)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			v.clear()
			return r.m, r.err
		case <-tick.C:
			if m, err := c.Model(e.ctx, model); err == nil {
				v.show(m)
			}
		}
	}
}

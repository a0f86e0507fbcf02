package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// runPull is `gantry pull [MODEL…|--all]`: the daemon pulls the images of
// those docker-runtime models, and the verb shows each pull's progress
// (the layers' bytes summed) as a bar on a terminal, a line per quarter
// elsewhere.
func runPull(e *env, args []string) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	all := fs.Bool("all", false, "pull the images of every docker-runtime model")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if (len(pos) == 0) == !*all || (*all && len(pos) > 0) {
		return usagef("usage: gantry pull MODEL… | --all")
	}
	v := newProgressView(e)
	quarter := map[string]int{}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	results, err := cl.Pull(e.ctx, pos, *all, func(p status.PullProgress) {
		pct := -1
		if p.Total > 0 {
			pct = int(100 * p.Done / p.Total)
		}
		if v.tty {
			fmt.Fprintf(e.stderr, "\r\033[K%spulling %s: %s of %s (%d layers) %s", progressBar(pct, 20), p.Image,
				config.FormatBytes(p.Done), config.FormatBytes(p.Total), p.Layers, strings.ToLower(p.Status))
			v.drawn = true
			return
		}
		if q := pct / 25; pct >= 0 && q > quarter[p.Image] || p.Finished {
			quarter[p.Image] = q
			fmt.Fprintf(e.stderr, "pulling %s: %s of %s\n", p.Image, config.FormatBytes(p.Done), config.FormatBytes(p.Total))
		}
	})
	v.clear()
	if err != nil {
		return err
	}
	if *asJSON {
		writeJSON(e.stdout, results) //nolint:errcheck // the failed pulls below decide the exit code
	}
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
			fmt.Fprintf(e.stderr, "%s (%s): %s\n", r.Image, strings.Join(r.Models, ", "), r.Error)
		} else if !*asJSON {
			fmt.Fprintf(e.stdout, "%s (%s): pulled, %s\n", r.Image, strings.Join(r.Models, ", "), config.FormatBytes(r.Bytes))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d image(s) could not be pulled", failed, len(results))
	}
	return nil
}

package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gantryhq/gantry/internal/client"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/fit"
	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/status"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// fitFlags are the flags fit and get share.
type fitFlags struct {
	cf          clientFlags
	root        string
	engine      string
	context     int64
	concurrency int
	quant       string
	name        string
	to          string
	include     multiFlag
	exclude     multiFlag
	asJSON      bool
}

func (f *fitFlags) register(fs *flag.FlagSet) {
	f.cf.register(fs)
	fs.StringVar(&f.root, "root", "", "the ~/ai tree (default: the config's root)")
	fs.StringVar(&f.engine, "engine", "", "judge this engine only (default: every engine that loads the format)")
	fs.Int64Var(&f.context, "context", 0, "context length to plan for (default: the model's, at most 32768)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "sequences at full context to plan for (default 1)")
	fs.StringVar(&f.quant, "quant", "", "a GGUF repository's quantization, e.g. Q4_K_M (default: the largest that fits)")
	fs.StringVar(&f.name, "name", "", "the model's name in the config (default: the repository's, in lower case)")
	fs.StringVar(&f.to, "to", "models", "where the files go: models (<root>/models/<family>/<name>) or hf-cache (the Hugging Face cache)")
	fs.Var(&f.include, "include", "a glob of files to take even when gantry would skip them (repeatable)")
	fs.Var(&f.exclude, "exclude", "a glob of files to leave out (repeatable)")
	fs.BoolVar(&f.asJSON, "json", false, "print JSON")
}

func (f *fitFlags) request(ref hub.Ref) fit.Request {
	return fit.Request{Ref: ref, Engine: f.engine, Context: f.context, Concurrency: f.concurrency, Name: f.name,
		Select: hub.Options{Include: f.include, Exclude: f.exclude, Quant: f.quant}}
}

// hubSetup loads the config (the demo's when there is none) and the Hub
// client the config and the environment name.
func (f *fitFlags) hubSetup() (*config.Config, *hub.Client, hub.Env, error) {
	if f.engine != "" && !engine.Known(f.engine) {
		return nil, nil, hub.Env{}, usagef("unknown engine %q (one of %s)", f.engine, strings.Join(engine.Names(), ", "))
	}
	if f.to != "models" && f.to != "hf-cache" {
		return nil, nil, hub.Env{}, usagef("--to %q: write models or hf-cache", f.to)
	}
	c, _, err := loadConfig(f.cf.config, true)
	if err != nil {
		return nil, nil, hub.Env{}, err
	}
	if f.root != "" {
		c.Root = config.ExpandHome(f.root)
	}
	env := hub.ReadEnv(os.Getenv)
	return c, hub.New(c.Hub.Endpoint, c.Hub.Token, env), env, nil
}

// boxes gathers this box (from its running gantry, else from its facts)
// and each peer (from its gantry's status).
func boxes(ctx context.Context, c *config.Config, local func(context.Context) (status.Status, error)) []fit.Box {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out := []fit.Box{fit.ThisBox(localBox(ctx, c))}
	if st, err := local(qctx); err == nil {
		out[0] = fit.FromStatus("this box", st)
	}
	for _, name := range c.PeerNames() {
		p := c.Peers[name]
		st, err := client.New(p.URL, p.Token).From("peers." + name + ".url").Status(qctx)
		if err != nil {
			out = append(out, fit.Box{Name: name, Err: "not asked: " + err.Error()})
			continue
		}
		out = append(out, fit.FromStatus(name, st))
	}
	return out
}

// destFor is where get writes a model: <root>/models/<family>/<name>, or
// the Hugging Face cache.
func destFor(c *config.Config, to string, env hub.Env) func(name, family string) string {
	return func(name, family string) string {
		if to == "hf-cache" {
			return env.Cache
		}
		return filepath.Join(c.Root, "models", family, name)
	}
}

func runFit(e *env, args []string) error {
	fs := flag.NewFlagSet("fit", flag.ContinueOnError)
	var f fitFlags
	f.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: gantry fit REPO[@REV] [--engine E] [--context N] [--quant Q] [--json]")
	}
	ref, err := hub.ParseRef(pos[0])
	if err != nil {
		return usagef("%v", err)
	}
	c, hc, env, err := f.hubSetup()
	if err != nil {
		return err
	}
	res, err := fit.Run(e.ctx, c, hc, f.request(ref), boxes(e.ctx, c, f.cf.status), destFor(c, f.to, env))
	if err != nil {
		return err
	}
	if f.asJSON {
		err = writeJSON(e.stdout, res)
	} else {
		printFit(e.stdout, res)
	}
	if err == nil && !anyGood(res) {
		return &ExitError{Code: 1}
	}
	return err
}

func anyGood(r *fit.Result) bool {
	for _, b := range r.Boxes {
		for _, v := range b.Verdicts {
			if v.Good() {
				return true
			}
		}
	}
	return false
}

func printFit(w io.Writer, r *fit.Result) {
	m := r.Model
	what := []string{r.Format, m.Quant.String()}
	if m.Quant.Method == "" {
		what[1] = strings.ToUpper(m.DType)
	}
	if m.Params > 0 {
		what = append(what, humanCount(m.Params)+" parameters")
	}
	fmt.Fprintf(w, "%s@%s → commit %s (%s)\n", r.Repo, r.Revision, r.Commit[:12], strings.Join(what, ", "))
	facts := []string{fmt.Sprintf("weights %s in %d tensors", config.FormatBytes(m.WeightBytes), m.Tensors)}
	if m.BytesPerToken > 0 {
		facts = append(facts, fmt.Sprintf("KV cache %s/token", config.FormatBytes(m.BytesPerToken)))
	}
	if m.MaxContext > 0 {
		facts = append(facts, fmt.Sprintf("max context %d", m.MaxContext))
	}
	facts = append(facts, "chat template: "+map[bool]string{true: "yes", false: "none"}[m.ChatTemplate])
	fmt.Fprintf(w, "  %s\n", strings.Join(facts, " · "))
	for _, p := range m.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	d := r.Download
	line := fmt.Sprintf("  download %s in %d files", config.FormatBytes(d.Bytes), d.Files)
	if d.Dest != "" {
		line += " to " + d.Dest
		if d.FreeBytes >= 0 {
			line += fmt.Sprintf(" (%s free", config.FormatBytes(d.FreeBytes))
			if d.FreeBytes < d.Bytes {
				line += ": NOT ENOUGH"
			}
			line += ")"
		}
	}
	fmt.Fprintln(w, line)
	if len(d.Skipped) > 0 {
		fmt.Fprintf(w, "  left out: %s\n", skippedWords(d.Skipped))
	}
	if len(r.Quants) > 1 {
		var qs []string
		for _, q := range r.Quants {
			qs = append(qs, fmt.Sprintf("%s %s", q.Name, config.FormatBytes(q.Size)))
		}
		fmt.Fprintf(w, "  quantizations: %s (taking %s; --quant chooses)\n", strings.Join(qs, ", "), r.Quant)
	}
	for _, b := range r.Boxes {
		fmt.Fprintln(w)
		if b.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", b.Name, b.Error)
			continue
		}
		src := "its gantry now"
		if !b.Live {
			src = "no gantry running: nothing counted as held"
		}
		fmt.Fprintf(w, "%s (budget %s, %s free; %s):\n", b.Name, config.FormatBytes(b.BudgetBytes), config.FormatBytes(b.FreeBytes), src)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, v := range b.Verdicts {
			fmt.Fprintf(tw, "  %s\t%s\n", v.Engine, v.Words)
			for _, fd := range v.Findings {
				fmt.Fprintf(tw, "  \t%s: %s\n  \t  → %s\n", fd.Level, fd.Reason, fd.Fix)
			}
		}
		tw.Flush()
	}
}

// skippedWords sums the files left out by reason.
func skippedWords(sk []hub.Skip) string {
	type agg struct {
		n     int
		bytes int64
	}
	by := map[string]*agg{}
	var order []string
	for _, s := range sk {
		if by[s.Reason] == nil {
			by[s.Reason] = &agg{}
			order = append(order, s.Reason)
		}
		by[s.Reason].n++
		by[s.Reason].bytes += s.Size
	}
	var parts []string
	for _, r := range order {
		parts = append(parts, fmt.Sprintf("%d file(s), %s: %s", by[r].n, config.FormatBytes(by[r].bytes), r))
	}
	return strings.Join(parts, "; ")
}

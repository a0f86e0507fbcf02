package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/inventory"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/status"
)

// Inspection is `gantry inspect --json`: the model's files, and the plan
// for it (at --context) with the rules that apply.
type Inspection struct {
	*inventory.Model
	Engine    string           `json:"engine,omitempty"`
	Context   int64            `json:"context"`
	Estimate  int64            `json:"estimate_bytes"`
	Source    string           `json:"estimate_source"`
	Findings  []status.Finding `json:"findings"`
	AddedArgs []string         `json:"added_args,omitempty"`
	// The engine's memory flags: fraction, vLLM's KV bytes, SGLang's
	// token pool, and environment gantry adds.
	MemoryFraction string   `json:"memory_fraction,omitempty"`
	KVCacheBytes   int64    `json:"kv_cache_bytes,omitempty"`
	MaxTotalTokens int64    `json:"max_total_tokens,omitempty"`
	AddedEnv       []string `json:"added_env,omitempty"`
}

func runInspect(e *env, args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	cfgFlag := fs.String("config", "", "config file (to resolve a MODEL name)")
	root := fs.String("root", "", "the ~/ai tree (default: the config's root)")
	ctxLen := fs.Int64("context", 0, "context length to estimate for (default: the model's, capped at 32768)")
	eng := fs.String("engine", "", "engine to check the rules for (default: the configured one, else sglang for folders, llamacpp for GGUF)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: gantry inspect PATH|MODEL [--context N] [--engine E] [--json]")
	}
	c, _, cerr := loadConfig(*cfgFlag, true)
	if c == nil {
		c = config.Demo()
	}
	if *root != "" {
		c.Root = config.ExpandHome(*root)
	}
	target := pos[0]
	var m *config.Model
	path := target
	if cm := c.Resolve(target); cm != nil {
		if cm.Path == "" {
			return fmt.Errorf("model %s has no path: to inspect (engine %s)", cm.Name, cm.Engine)
		}
		cp := *cm
		m, path = &cp, c.ModelPath(cm)
	} else if _, err := os.Stat(target); err != nil {
		if cerr != nil {
			return fmt.Errorf("%s is neither a file, a folder nor a configured model (%v; config: %v)", target, err, cerr)
		}
		if alt := filepath.Join(c.Root, "models", target); fileExists(alt) {
			path = alt
		} else {
			return fmt.Errorf("%s is neither a file, a folder nor a configured model (known: %s)", target, strings.Join(c.ModelNames(), ", "))
		}
	}
	info, err := inventory.Inspect(path)
	if err != nil {
		return err
	}
	if m == nil {
		m = &config.Model{Name: info.Name, Path: path, Engine: plan.GuessEngine(info), Runtime: config.RuntimeNative}
	}
	if *eng != "" {
		m.Engine = *eng
	}
	if *ctxLen > 0 {
		m.Context = int(*ctxLen)
	}
	box := localBox(e.ctx, c)
	p := plan.One(c, m, box, func(string) (*inventory.Model, error) { return info, nil })
	out := Inspection{Model: info, Engine: m.Engine, Context: p.Context, Estimate: p.Bytes, Source: p.Source,
		Findings: p.Findings, AddedArgs: p.Args, MemoryFraction: p.Fraction, KVCacheBytes: p.KVCacheBytes,
		MaxTotalTokens: p.MaxTotalTokens, AddedEnv: p.Env}
	if out.Findings == nil {
		out.Findings = []status.Finding{}
	}
	if *asJSON {
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		printInspection(e.stdout, out, box)
	}
	if why := unservable(info, p); why != "" {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s cannot be served as configured: %s", target, why)}
	}
	return nil
}

// unservable says why a model cannot be served as configured ("" when it
// can): its files cannot be read whole, a rule blocks the start, or there
// is no memory reservation to admit it with.
func unservable(info *inventory.Model, p *plan.Model) string {
	switch {
	case len(info.Problems) > 0:
		return info.Problems[0]
	case p.Blocked() != nil:
		return p.Blocked().Reason
	case p.Bytes <= 0:
		return p.Source
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func printInspection(w io.Writer, in Inspection, box plan.Box) {
	m := in.Model
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("path", m.Path)
	row("format", m.Format)
	row("architecture", strings.TrimSpace(m.Architecture+" ("+m.ModelType+")"))
	row("kind", m.Kind)
	row("dtype", m.DType)
	row("quantization", m.Quant.String())
	if m.Quant.KVCache != "" {
		row("kv cache quant", m.Quant.KVCache)
	}
	if m.Params > 0 {
		row("parameters", fmt.Sprintf("%s (%d)", humanCount(m.Params), m.Params))
	}
	if m.WeightBytes > 0 {
		row("weights", fmt.Sprintf("%s (%d bytes in %d tensors)", config.FormatBytes(m.WeightBytes), m.WeightBytes, m.Tensors))
	}
	row("on disk", fmt.Sprintf("%s in %d files", config.FormatBytes(m.DiskBytes), m.Files))
	if m.MaxContext > 0 {
		row("max context", fmt.Sprint(m.MaxContext))
	}
	if m.BytesPerToken > 0 {
		kv := fmt.Sprintf("%d bytes/token", m.BytesPerToken)
		if m.MLA {
			kv += " (MLA latent)"
		}
		if m.Window > 0 {
			kv += fmt.Sprintf(", of which %d in sliding-window layers capped at %d tokens", m.SlidingBytesPerToken, m.Window)
		}
		row("kv cache", kv)
	}
	if in.Estimate > 0 {
		row("estimate", fmt.Sprintf("%s for %s at context %d — %s", config.FormatBytes(in.Estimate), in.Engine, in.Context, in.Source))
		row("budget", fmt.Sprintf("%s (%s)", config.FormatBytes(box.Budget), box.Facts.Source))
	}
	var flags []string
	if in.MemoryFraction != "" {
		flags = append(flags, "fraction "+in.MemoryFraction)
	}
	if in.KVCacheBytes > 0 {
		flags = append(flags, fmt.Sprintf("--kv-cache-memory-bytes %d (%s)", in.KVCacheBytes, config.FormatBytes(in.KVCacheBytes)))
	}
	if in.MaxTotalTokens > 0 {
		flags = append(flags, fmt.Sprintf("--max-total-tokens %d", in.MaxTotalTokens))
	}
	row("engine memory", strings.Join(flags, ", "))
	row("engine env", strings.Join(in.AddedEnv, " "))
	tw.Flush()
	for _, p := range m.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	for _, f := range in.Findings {
		fmt.Fprintf(w, "%s: %s\n", f.Level, f.Reason)
		fmt.Fprintf(w, "  → %s\n", f.Fix)
	}
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func runModels(e *env, args []string) error {
	fs := flag.NewFlagSet("models", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	root := fs.String("root", "", "the ~/ai tree (default: the config's root)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, _, err := loadConfig(cf.config, true)
	if err != nil {
		return err
	}
	if *root != "" {
		c.Root = config.ExpandHome(*root)
	}
	var live *status.Status
	if st, err := cf.status(e.ctx); err == nil {
		live = &st
	}
	var served map[string]string
	if live != nil {
		served = map[string]string{}
		for _, m := range live.Models {
			served[m.Name] = string(m.State)
		}
	}
	rows, err := plan.Inventory(c, localBox(e.ctx, c), served)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, rows)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tON DISK\tCONFIGURED\tSERVED\tENGINE\tQUANT\tWEIGHTS\tESTIMATE\tFROM")
	for _, r := range rows {
		from := "-"
		if r.Repo != "" {
			from = r.Repo + "@" + short(r.Commit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, yes(r.OnDisk), yes(r.Configured), r.Served,
			orDash(r.Engine), orDash(r.Quant), sizeOrDash(r.SizeBytes), sizeOrDash(r.Estimate), from)
	}
	tw.Flush()
	if live == nil {
		fmt.Fprintln(e.stderr, "(gantry is not reachable: SERVED is unknown)")
	}
	return nil
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func sizeOrDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return config.FormatBytes(n)
}

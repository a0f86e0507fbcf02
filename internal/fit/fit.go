// Package fit answers, before the first weight byte, whether a repository
// on the Hub fits this box and its peers with each engine: the inventory
// reads its files through HTTP ranges (inventory.Files over package hub),
// the planner and its rules run on that as on a model on disk, and each
// box's budget, what it holds now and what it could evict decide the
// verdict.
package fit

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/inventory"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
)

// Request is what to fit.
type Request struct {
	Ref hub.Ref
	// Engine limits the verdicts to one engine ("" for every engine that
	// loads the checkpoint's format).
	Engine      string
	Context     int64 // 0: the planner's default (the model's, at most 32768)
	Concurrency int   // sequences at full context (default 1)
	Select      hub.Options
	// Name is the model's name in the config ("" makes one of the
	// repository's).
	Name string
}

// Result is the answer of a fit.
type Result struct {
	Repo     string           `json:"repo"`
	Revision string           `json:"revision"`
	Commit   string           `json:"commit"`
	Gated    string           `json:"gated,omitempty"`
	Name     string           `json:"name"`   // the model's name in the config
	Family   string           `json:"family"` // its folder under <root>/models
	Format   string           `json:"format"`
	Quant    string           `json:"quant,omitempty"`
	Quants   []hub.Quant      `json:"quants,omitempty"`
	Model    *inventory.Model `json:"inventory"`
	Download Download         `json:"download"`
	Boxes    []BoxResult      `json:"boxes"`

	// Resolved and Selection are what get downloads.
	Resolved  *hub.Repo      `json:"-"`
	Selection *hub.Selection `json:"-"`
}

// Download is what get would fetch.
type Download struct {
	Bytes   int64      `json:"bytes"`
	Files   int        `json:"files"`
	Skipped []hub.Skip `json:"skipped,omitempty"`
	// Dest is the folder it would go to, FreeBytes the free disk there.
	Dest      string `json:"dest,omitempty"`
	FreeBytes int64  `json:"free_bytes,omitempty"`
}

// BoxResult is one box's verdicts.
type BoxResult struct {
	Name        string    `json:"name"`
	Live        bool      `json:"live"` // a running gantry gave the figures
	BudgetBytes int64     `json:"budget_bytes"`
	FreeBytes   int64     `json:"free_bytes"`
	Error       string    `json:"error,omitempty"`
	Verdicts    []Verdict `json:"verdicts"`
}

// Verdicts.
const (
	Fits         = "fits"                // in what is free now
	FitsEvicting = "fits-after-evicting" // once idle models stop
	Busy         = "busy"                // the box could, but what runs now holds the memory
	FitsShorter  = "fits-shorter"        // only with a shorter context
	NoFit        = "does-not-fit"        // not even at a short context
	CannotServe  = "cannot-serve"        // a rule blocks it
	NoEstimate   = "no-estimate"         // the files do not say how much memory
)

// Verdict is one engine on one box.
type Verdict struct {
	Engine  string `json:"engine"`
	Verdict string `json:"verdict"`
	Words   string `json:"words"`
	Context int64  `json:"context"`
	// MaxContext is the longest context that fits (fits-shorter).
	MaxContext int64            `json:"max_context,omitempty"`
	NeedsBytes int64            `json:"needs_bytes"`
	Evict      []string         `json:"evict,omitempty"`
	Findings   []status.Finding `json:"findings,omitempty"`
	// The engine's flags the plan chose (what --add writes beside the
	// engine and context).
	AddedArgs      []string `json:"added_args,omitempty"`
	MemoryFraction string   `json:"memory_fraction,omitempty"`
}

// Good says the verdict lets the model run on that box.
func (v Verdict) Good() bool {
	return v.Verdict == Fits || v.Verdict == FitsEvicting || v.Verdict == Busy
}

// Run fits req: it resolves the repository once, selects what get would
// take, reads the metadata through ranges and plans each engine on each
// box (boxes[0] is this box; it also chooses a GGUF quantization when
// none is asked for). dest says where get would write the model (for the
// free disk; nil for nowhere).
func Run(ctx context.Context, cfg *config.Config, c *hub.Client, req Request, boxes []Box, dest func(name, family string) string) (*Result, error) {
	repo, err := c.Resolve(ctx, req.Ref)
	if err != nil {
		return nil, err
	}
	remote := &Remote{Ctx: ctx, Client: c, Repo: repo}
	ggufs := map[string]*inventory.Model{}
	choose := func(qs []hub.Quant) (string, error) { return chooseQuant(cfg, req, remote, qs, boxes, ggufs) }
	sel, err := hub.Select(repo, req.Select, choose)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Ref, err)
	}
	remote.Files = sel.Files
	if err := canRead(ctx, c, repo, sel); err != nil {
		return nil, err
	}
	var info *inventory.Model
	switch sel.Format {
	case "gguf":
		info = ggufs[sel.Quant]
		if info == nil {
			info, err = inventory.InspectGGUF(remote, quantFiles(sel))
		}
	case "":
		return nil, fmt.Errorf("%s@%s holds no model gantry knows: no safetensors, GGUF or PyTorch weights", repo.Repo, repo.Commit[:12])
	default:
		info, err = inventory.InspectFiles(remote)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Ref, err)
	}
	res := &Result{Repo: repo.Repo, Revision: repo.Revision, Commit: repo.Commit, Gated: repo.Gated, Format: sel.Format,
		Quant: sel.Quant, Quants: sel.Quants, Model: info, Resolved: repo, Selection: sel,
		Download: Download{Bytes: sel.Bytes(), Files: len(sel.Files), Skipped: sel.Skipped}}
	res.Name, res.Family = names(req, repo, info, sel)
	info.Name, info.Path = res.Name, repo.Repo+"@"+repo.Commit
	if dest != nil {
		res.Download.Dest = dest(res.Name, res.Family)
		res.Download.FreeBytes = fetch.FreeDisk(res.Download.Dest)
	}
	engines := engine.Loading(sel.Format)
	if req.Engine != "" {
		engines = []string{req.Engine}
	}
	for _, b := range boxes {
		br := BoxResult{Name: b.Name, Live: b.Live, BudgetBytes: b.Plan.Budget, FreeBytes: b.free(), Error: b.Err}
		if b.Err == "" {
			for _, e := range engines {
				br.Verdicts = append(br.Verdicts, Judge(cfg, res.Name, e, req.Context, req.Concurrency, info, b))
			}
		}
		res.Boxes = append(res.Boxes, br)
	}
	return res, nil
}

// canRead reads one byte of a file that is no weight (config.json, or a
// GGUF's magic), so a gated or private repository is refused with the
// Hub's words before anything else.
func canRead(ctx context.Context, c *hub.Client, repo *hub.Repo, sel *hub.Selection) error {
	probe := ""
	for _, f := range sel.Files {
		if f.Path == "config.json" || probe == "" && f.Size > 0 && (sel.Format != "gguf" || strings.HasSuffix(f.Path, ".gguf")) {
			probe = f.Path
		}
	}
	if probe == "" {
		return nil
	}
	body, err := c.Open(ctx, repo, probe, 0, 1)
	if err != nil {
		return err
	}
	return body.Close()
}

func quantFiles(sel *hub.Selection) []string {
	for _, q := range sel.Quants {
		if q.Name == sel.Quant {
			return q.Files
		}
	}
	return nil
}

// names makes the model's config name (the repository's name in lower
// case, with the GGUF quantization) and its family folder (the config's
// model_type, else the organisation).
func names(req Request, repo *hub.Repo, info *inventory.Model, sel *hub.Selection) (name, family string) {
	org, base, _ := strings.Cut(repo.Repo, "/")
	name = req.Name
	if name == "" {
		name = strings.ToLower(base)
		if sel.Quant != "" && !strings.Contains(strings.ToLower(name), strings.ToLower(sel.Quant)) {
			name += "-" + strings.ToLower(sel.Quant)
		}
	}
	family = strings.ToLower(strings.ReplaceAll(info.ModelType, "_", "-"))
	if family == "" || strings.ContainsAny(family, "/\\") {
		family = strings.ToLower(org)
	}
	return name, path.Clean(family)
}

// plan1 plans the model for engine e at context n on box b.
func plan1(cfg *config.Config, name, e string, n int64, conc int, info *inventory.Model, b Box) *plan.Model {
	m := &config.Model{Name: name, Engine: e, Context: int(n), Concurrency: conc, Path: info.Path,
		Runtime: config.DefaultRuntime(e), Mode: config.ModeOnDemand}
	return plan.One(cfg, m, b.Plan, func(string) (*inventory.Model, error) { return info, nil })
}

// Judge is the verdict for engine e on box b at context n (0: the
// planner's default): the plan's reservation against the budget, what is
// free now and what idle models could be evicted; when the whole budget
// is too small, the longest context that fits.
func Judge(cfg *config.Config, name, e string, n int64, conc int, info *inventory.Model, b Box) Verdict {
	p := plan1(cfg, name, e, n, conc, info, b)
	v := Verdict{Engine: e, Context: p.Context, NeedsBytes: p.Bytes, AddedArgs: p.Args, MemoryFraction: p.Fraction}
	for _, f := range p.Findings {
		if f.Rule != "does-not-fit" {
			v.Findings = append(v.Findings, f)
		}
	}
	need, budget, free := p.Bytes, b.Plan.Budget, b.free()
	if f := blocking(p); f != nil {
		v.Verdict, v.Words = CannotServe, f.Reason+" — "+f.Fix
		return v
	}
	switch {
	case need <= 0:
		v.Verdict, v.Words = NoEstimate, p.Source
	case budget > 0 && need > budget:
		v.MaxContext = longestFitting(cfg, name, e, p.Context, conc, info, b)
		if v.MaxContext > 0 {
			v.Verdict = FitsShorter
			v.Words = fmt.Sprintf("fits only up to context %d: at %d it needs %s, the budget is %s (set context: %d)",
				v.MaxContext, p.Context, size(need), size(budget), v.MaxContext)
		} else {
			v.Verdict = NoFit
			v.Words = fmt.Sprintf("does not fit: needs %s (weights %s + KV cache %s + engine %s), the box gives %s",
				size(need), size(p.Weights), size(p.KV), size(p.Overhead), size(budget))
		}
	case need <= free:
		v.Verdict = Fits
		v.Words = fmt.Sprintf("fits at context %d: reserves %s of the %s free", p.Context, size(need), size(free))
	default:
		if victims, ok := sched.ChooseVictims(need, free, b.Holders); ok {
			v.Verdict, v.Evict = FitsEvicting, victims
			v.Words = fmt.Sprintf("fits at context %d (%s) once %s stop (idle on-demand, least recently used first)",
				p.Context, size(need), strings.Join(victims, ", "))
		} else {
			v.Verdict = Busy
			v.Words = fmt.Sprintf("fits the budget (%s of %s) but not now: %s of it held by %s (always-on or busy)",
				size(need), size(budget), size(b.Reserved), holders(b))
		}
	}
	return v
}

// blocking is a finding that blocks the start, besides not fitting.
func blocking(p *plan.Model) *status.Finding {
	for i := range p.Findings {
		if f := p.Findings[i]; f.Level == plan.LevelError && f.Rule != "does-not-fit" {
			return &p.Findings[i]
		}
	}
	return nil
}

// longestFitting finds the longest context (below hi) whose reservation
// fits b's budget; 0 when not even a short one does (the weights alone
// are too big). Contexts are whole KiB of tokens when that is possible.
func longestFitting(cfg *config.Config, name, e string, hi int64, conc int, info *inventory.Model, b Box) int64 {
	fits := func(n int64) bool { return plan1(cfg, name, e, n, conc, info, b).Bytes <= b.Plan.Budget }
	const least = 512
	if hi <= least || !fits(least) {
		return 0
	}
	lo := int64(least) // fits
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	if lo >= 2048 {
		lo = lo / 1024 * 1024
	}
	return lo
}

func holders(b Box) string {
	var n []string
	for _, h := range b.Holders {
		n = append(n, h.Name)
	}
	sort.Strings(n)
	if len(n) == 0 {
		return "models"
	}
	return strings.Join(n, ", ")
}

func size(n int64) string { return config.FormatBytes(n) }

// chooseQuant takes, when no --quant is given, the largest quantization
// whose plan fits this box's budget (boxes[0]) at the asked context with
// the asked engine (llama.cpp by default); none fitting, the smallest.
// The headers read on the way are kept in seen.
func chooseQuant(cfg *config.Config, req Request, r *Remote, qs []hub.Quant, boxes []Box, seen map[string]*inventory.Model) (string, error) {
	if len(boxes) == 0 || boxes[0].Plan.Budget <= 0 {
		return "", nil // PreferredQuants decides
	}
	b := boxes[0]
	e := req.Engine
	if e == "" {
		e = engine.Loading(engine.FormatGGUF)[0]
	}
	sorted := append([]hub.Quant{}, qs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Size > sorted[j].Size })
	for _, q := range sorted {
		if q.Size > b.Plan.Budget {
			continue // the weights alone are too big
		}
		files := make([]hub.File, 0, len(q.Files))
		for _, p := range q.Files {
			f, _ := r.Repo.File(p)
			files = append(files, f)
		}
		rq := &Remote{Ctx: r.Ctx, Client: r.Client, Repo: r.Repo, Files: files}
		info, err := inventory.InspectGGUF(rq, q.Files)
		if err != nil {
			return "", err
		}
		seen[q.Name] = info
		if p := plan1(cfg, "choice", e, req.Context, req.Concurrency, info, b); p.Bytes > 0 && p.Bytes <= b.Plan.Budget {
			return q.Name, nil
		}
	}
	return sorted[len(sorted)-1].Name, nil
}

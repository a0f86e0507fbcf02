// Package plan decides, before any engine starts, how much memory each
// model reserves (its memory: or an estimate from its files), what context
// the engine is told, and whether the engine × checkpoint × GPU combination
// is known to fail. The scheduler reserves the same number the engine's own
// memory flag is given, so several models share the box without the second
// one failing.
package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/hfcache"
	"github.com/gantryhq/gantry/internal/inventory"
	"github.com/gantryhq/gantry/internal/status"
)

// DefaultContext is the context planned for a model that sets none, capped
// by the model's own maximum: engines default to the maximum (128K and
// more), which rarely fits beside other models.
const DefaultContext = 32768

// Level of a finding.
const (
	LevelError   = "error"   // blocks the start
	LevelWarning = "warning" // shown, does not block
	LevelFixed   = "fixed"   // gantry adds what is missing
)

// Model is the plan for one model.
type Model struct {
	Name string `json:"name"`
	// Bytes is what the scheduler reserves; 0 when unknown (then the model
	// cannot be admitted and config validation says so).
	Bytes int64 `json:"memory_bytes"`
	// Source says where Bytes comes from.
	Source string `json:"memory_source"`
	// Context is the context length the engine is told (0: engine default).
	Context  int64            `json:"context"`
	Weights  int64            `json:"weight_bytes"`
	KV       int64            `json:"kv_bytes"`
	Overhead int64            `json:"overhead_bytes"`
	Info     *inventory.Model `json:"inventory,omitempty"`
	Findings []status.Finding `json:"findings,omitempty"`
	// Args are flags gantry adds to the engine's argv (e.g. SGLang's
	// --quantization modelopt_fp4).
	Args []string `json:"added_args,omitempty"`
	// Fraction is the memory fraction given to the engine, "" for none.
	Fraction string `json:"memory_fraction,omitempty"`
	// KVCacheBytes is the KV cache size given to vLLM
	// (--kv-cache-memory-bytes), 0 for none.
	KVCacheBytes int64 `json:"kv_cache_bytes,omitempty"`
	// MaxTotalTokens is the token pool given to SGLang
	// (--max-total-tokens), 0 for none.
	MaxTotalTokens int64 `json:"max_total_tokens,omitempty"`
	// Env is environment gantry adds to the engine (KEY=VALUE).
	Env []string `json:"env,omitempty"`
}

// Blocked returns the first error finding, or nil.
func (m *Model) Blocked() *status.Finding {
	for i := range m.Findings {
		if m.Findings[i].Level == LevelError {
			return &m.Findings[i]
		}
	}
	return nil
}

// StartBlocker is the error finding that refuses every start of the model,
// or nil. Not fitting the budget is not one: admission refuses that, with
// the holders named, and it may fit once others stop.
func (m *Model) StartBlocker() *status.Finding {
	for i := range m.Findings {
		if m.Findings[i].Level == LevelError && m.Findings[i].Rule != "does-not-fit" {
			return &m.Findings[i]
		}
	}
	return nil
}

// Invalid is why the model can never start as configured — the finding
// `config validate` reports as its error and every start would refuse —;
// "" when it can start.
func (m *Model) Invalid() string {
	if f := m.StartBlocker(); f != nil {
		return f.Reason + " — " + f.Fix
	}
	return ""
}

// Resources is what the engine adapter gets from the plan.
func (m *Model) Resources() engine.Resources {
	return engine.Resources{MemoryBytes: m.Bytes, Context: m.Context, ExtraArgs: m.Args, Fraction: m.Fraction,
		KVCacheBytes: m.KVCacheBytes, MaxTotalTokens: m.MaxTotalTokens, Env: m.Env}
}

// Box is the machine the plan is for. In gantry "box" means one machine
// only (a DGX Spark); the other gantry instances are peers.
type Box struct {
	Facts  gpu.Facts
	Total  int64 // memory engines share
	Budget int64 // Total − reserve
}

// Inspector reads a model's files; inventory.Inspect is the real one.
type Inspector func(path string) (*inventory.Model, error)

// Make plans every model of cfg on box.
func Make(cfg *config.Config, box Box, inspect Inspector) map[string]*Model {
	if inspect == nil {
		inspect = inventory.Inspect
	}
	out := map[string]*Model{}
	for _, name := range cfg.ModelNames() {
		out[name] = One(cfg, cfg.Models[name], box, inspect)
	}
	return out
}

// One plans one model (a nil inspect is inventory.Inspect).
func One(cfg *config.Config, m *config.Model, box Box, inspect Inspector) *Model {
	if inspect == nil {
		inspect = inventory.Inspect
	}
	p := &Model{Name: m.Name, Context: int64(m.Context)}
	p.readFiles(cfg, m, inspect)
	d := descriptor(m.Engine)
	if p.Context == 0 && p.Info != nil && p.Info.MaxContext > 0 && d.Files.DefaultContext {
		p.Context = min(p.Info.MaxContext, DefaultContext)
	}
	overhead := d.Memory.Overhead
	if es := cfg.Engines[m.Engine]; es != nil && es.Overhead > 0 {
		overhead = int64(es.Overhead)
	}
	if p.Info != nil && p.Info.WeightBytes > 0 {
		conc := int64(max(m.Concurrency, 1))
		p.Weights = p.Info.WeightBytes
		p.KV = p.Info.KV.Bytes(p.Context) * conc
		p.Overhead = overhead
	}
	switch {
	case m.Memory > 0:
		p.Bytes, p.Source = int64(m.Memory), "memory: in the config"
	case p.Weights > 0:
		p.Bytes = p.Weights + p.KV + p.Overhead
		p.Source = fmt.Sprintf("estimate: weights %s + KV cache %s (context %d × concurrency %d) + engine overhead %s",
			config.FormatBytes(p.Weights), config.FormatBytes(p.KV), p.Context, max(m.Concurrency, 1), config.FormatBytes(p.Overhead))
	case p.Info != nil && len(p.Info.Problems) > 0:
		p.Source = "no estimate: the model's files could not be read (" + p.Info.Problems[0] + "); set memory:"
	case p.Source == "":
		p.Source = "no estimate: no model files to read (set memory:)"
	}
	p.fraction(d, m, box)
	p.kvFlags(d, m, cfg)
	p.unifiedEnv(d, m, box)
	p.startCheck(d, m, box)
	p.rules(d, m, box)
	return p
}

// readFiles reads the model's files, if it names any: their inventory,
// or why there is none (and a path-missing finding when they are not
// there).
func (p *Model) readFiles(cfg *config.Config, m *config.Model, inspect Inspector) {
	path := cfg.ModelPath(m)
	if path == "" {
		return
	}
	info, err := inspect(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.Source = "no estimate: " + path + " does not exist"
		p.Findings = append(p.Findings, missing(m, path))
	case err != nil && m.Runtime == config.RuntimeDocker:
		p.Source = "files not readable here: " + err.Error()
	case err != nil:
		p.Source = "no estimate: " + err.Error()
	default:
		p.Info = info
	}
}

// descriptor is the engine's descriptor; an unknown engine (which config
// validation refuses) gets an empty one: no flags, no rules.
func descriptor(name string) *engine.Descriptor {
	if d, err := engine.Lookup(name); err == nil {
		return d
	}
	return &engine.Descriptor{Name: name}
}

// missing is the finding for a model whose files are not there: a path,
// or a snapshot the Hugging Face cache does not hold.
func missing(m *config.Model, path string) status.Finding {
	f := status.Finding{Level: LevelError, Rule: "path-missing", Reason: fmt.Sprintf("%s does not exist", path),
		Fix: "correct path: (relative to <root>/models, or absolute), or put the model there first; `gantry models` lists what is on disk"}
	if r, err := hfcache.ParseRef(m.Path); err == nil {
		f.Reason = fmt.Sprintf("%s is not in the Hugging Face cache (%s)", r, hfcache.Dir(os.Getenv))
		f.Fix = fmt.Sprintf("gantry get %s@%s --to hf-cache puts it there; `gantry models` lists the cache's snapshots", r.Repo, r.Rev)
	}
	return f
}

// fraction computes the engine's memory flag value and warns when an
// explicit flag in args contradicts the reservation.
func (p *Model) fraction(d *engine.Descriptor, m *config.Model, box Box) {
	mem := d.Memory
	flag := mem.Fraction
	if flag == "" || box.Total <= 0 || p.Bytes <= 0 {
		return
	}
	// The engine takes its fraction of the total CUDA reports: on unified
	// memory that is MemTotal, not the (smaller) total gantry budgets from.
	engineTotal := box.Total
	if box.Facts.Unified && box.Facts.Memory != nil && box.Facts.Memory.Total > 0 {
		engineTotal = box.Facts.Memory.Total
	}
	f := float64(p.Bytes) / float64(engineTotal)
	if mem.FractionOfFree {
		free := float64(engineTotal - p.Weights - p.Overhead)
		if p.Weights > 0 && free > 0 {
			f = float64(p.KV) / free
		}
	}
	if mem.UnifiedCap > 0 && box.Facts.Unified && f > mem.UnifiedCap {
		p.Findings = append(p.Findings, status.Finding{Level: LevelWarning, Rule: d.Name + "-unified-cap", Reason: fmt.Sprintf("the reservation is %.2f of unified memory; %s cannot get more than %.2f on a box whose OS shares that memory", f, d.Title, mem.UnifiedCap),
			Fix: fmt.Sprintf("gantry passes %s %.2f; lower context or concurrency if %s runs short", flag, mem.UnifiedCap, d.Title)})
		f = mem.UnifiedCap
	}
	f = min(max(f, 0.01), 0.95)
	p.Fraction = strconv.FormatFloat(f, 'f', 2, 64)
	if v := engine.FlagValue(m.Args, flag); v != "" {
		if uf, err := strconv.ParseFloat(v, 64); err == nil && (uf-f > 0.02 || f-uf > 0.02) {
			p.Findings = append(p.Findings, status.Finding{Level: LevelWarning, Rule: "memory-flag-contradicts", Reason: fmt.Sprintf("args set %s %s but the reservation is %s (%.2f of %s)", flag, v, config.FormatBytes(p.Bytes), f, config.FormatBytes(engineTotal)),
				Fix: "your flag wins; set memory: to match it, or drop the flag and let gantry size it"})
		}
		p.Fraction = ""
	}
}

// Unreserved lists, as config problems, the models that have no memory
// reservation: without one the scheduler cannot admit them, so it refuses
// the config.
func Unreserved(cfg *config.Config, plans map[string]*Model) config.Problems {
	var out config.Problems
	for _, name := range cfg.ModelNames() {
		if p := plans[name]; p.Bytes <= 0 {
			out = append(out, unreserved(cfg, name, p))
		}
	}
	return out
}

func unreserved(cfg *config.Config, name string, p *Model) config.Problem {
	k, l := keyLine(cfg, name, "memory")
	return config.Problem{File: cfg.File, Line: l, Path: k, Msg: "memory: is required here (" + p.Source + ")"}
}

// keyLine is where a model's key is in the file: models.<name>.<key> when
// the file sets it, else the model's own line.
func keyLine(cfg *config.Config, name, key string) (string, int) {
	path := []string{"models", name}
	if l := cfg.Line(append(path, key)...); l > 0 && cfg.Line(path...) != l {
		return "models." + name + "." + key, l
	}
	return "models." + name, cfg.Line(path...)
}

// Problems turns the plans into config problems: a model without a
// reservation or with an error finding is an error; warnings and fixes are
// warnings. Each names the model's key path and line.
func Problems(cfg *config.Config, plans map[string]*Model) config.Problems {
	var out config.Problems
	for _, name := range cfg.ModelNames() {
		p := plans[name]
		if p == nil { // not planned (a model with problems of its own)
			continue
		}
		// A reservation needs the files to estimate from: while they are
		// missing, that is the problem (path-missing), not memory:.
		if p.Bytes <= 0 && !p.hasFinding("path-missing") {
			out = append(out, unreserved(cfg, name, p))
		}
		out = append(out, findingProblems(cfg, name, p.Findings)...)
	}
	return out
}

// hasFinding reports whether the plan has a finding of the rule.
func (p *Model) hasFinding(rule string) bool {
	for _, f := range p.Findings {
		if f.Rule == rule {
			return true
		}
	}
	return false
}

// findingProblems are a model's findings as config problems, each at the
// key it is about.
func findingProblems(cfg *config.Config, name string, findings []status.Finding) config.Problems {
	var out config.Problems
	for _, f := range findings {
		key := "engine"
		switch {
		case f.Rule == "does-not-fit", f.Rule == "memory-flag-contradicts", strings.HasSuffix(f.Rule, "-unified-cap"):
			key = "memory"
		case f.Rule == "context-above-max":
			key = "context"
		case f.Rule == "path-missing":
			key = "path"
		}
		k, l := keyLine(cfg, name, key)
		// Not fitting this box is the box's matter, not the config's: the
		// same file is right on a bigger machine (starts are refused).
		warn := f.Level != LevelError || f.Rule == "does-not-fit"
		out = append(out, config.Problem{File: cfg.File, Line: l, Path: k, Warning: warn, Msg: f.Reason + " — " + f.Fix})
	}
	return out
}

// planKeys are the model's keys the whole plan reads: with an error in
// one (a value half decoded, an unset ${env.X}) its estimate, flags and
// rules would be computed from a value the user did not mean.
var planKeys = []string{"engine", "path", "memory", "context", "concurrency", "args", "env", "runtime"}

// Checkable says which of a model's checks can run on a config with the
// problems probs (config validation runs every one it can, so that each
// problem shows in one run): files — whether its path: names files to look
// for, which needs nothing but a path without errors (and root: without
// errors when the path is relative to it), whatever the model's other
// keys say; whole — whether the whole plan (memory, flags, rules) can run,
// which needs a known engine, files it can read (files, and a model that
// names its files at all) and no error in a key the plan reads.
func Checkable(cfg *config.Config, m *config.Model, probs config.Problems) (files, whole bool) {
	key := "models." + m.Name
	files = !probs.Under(key+".path") && !(config.PathUnderRoot(m.Path) && probs.Under("root"))
	if !files {
		return false, false
	}
	if _, err := engine.Lookup(m.Engine); err != nil || m.NamesNoModel() != "" {
		return true, false
	}
	for _, k := range planKeys {
		if probs.Under(key + "." + k) {
			return true, false
		}
	}
	return true, true
}

// FileProblems checks only that the files of the named models are there
// (a nil inspect is inventory.Inspect): the one check config validation
// still runs for a model whose whole plan it cannot (Checkable).
func FileProblems(cfg *config.Config, names []string, inspect Inspector) config.Problems {
	if inspect == nil {
		inspect = inventory.Inspect
	}
	var out config.Problems
	for _, name := range names {
		p := &Model{}
		p.readFiles(cfg, cfg.Models[name], inspect)
		out = append(out, findingProblems(cfg, name, p.Findings)...)
	}
	return out
}

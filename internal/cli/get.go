package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/fit"
	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/recipes"
)

type getFlags struct {
	fitFlags
	add     bool
	runtime string
	conns   int
	recipe  string
	peers   string
}

func runGet(e *env, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	var f getFlags
	f.register(fs)
	fs.BoolVar(&f.add, "add", false, "add the model to the config with the engine, context and flags the fit chose")
	fs.StringVar(&f.runtime, "runtime", "", "with --add: native or docker (default: the engine's)")
	fs.IntVar(&f.conns, "conns", 4, "connections (and files) at once")
	fs.StringVar(&f.peers, "peers", "", "then have these peers (names under peers:, or all) copy the same commit from this box")
	fs.StringVar(&f.recipe, "recipe", "", "a recipe of gantry recipes: its repository, added with its engine, image, flags and context")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	rec, pos, err := f.useRecipe(pos)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: gantry get REPO[@REV] [--engine E] [--name N] [--quant Q] [--include G] [--exclude G] [--to models|hf-cache] [--add] [--json], or gantry get --recipe NAME")
	}
	ref, err := hub.ParseRef(pos[0])
	if err != nil {
		return usagef("%v", err)
	}
	if f.runtime != "" && f.runtime != config.RuntimeNative && f.runtime != config.RuntimeDocker {
		return usagef("--runtime %q: native or docker", f.runtime)
	}
	c, hc, env, err := f.hubSetup()
	if err != nil {
		return err
	}
	peers, err := peerNames(c, f.peers)
	if err != nil {
		return err
	}
	res, err := f.resolve(e, c, hc, env, ref)
	if err != nil {
		return err
	}
	out := newGetView(e, f.asJSON)
	out.plan(res)
	layout := f.layout(res, env)
	job := fetch.Job{Client: hc, Repo: res.Resolved, Files: res.Selection.Files, Quant: res.Quant, Layout: layout,
		Conns: f.conns, Events: out.event}
	dl, err := fetch.Run(e.ctx, job)
	out.finish()
	if err != nil {
		return err
	}
	if err := f.copyToPeers(e.ctx, e, c, res, peers); err != nil {
		return err
	}
	if !f.add {
		return out.done(dl, "")
	}
	m, err := f.entry(c, res, layout)
	if err != nil {
		return err
	}
	if rec != nil {
		m = recipeEntry(rec, res, m.Path, m.Name)
	}
	path, _ := configPath(f.cf.config)
	if err := addModel(e.ctx, path, m); err != nil {
		return err
	}
	return out.done(dl, fmt.Sprintf("added models.%s to %s (engine %s, context %d): gantry start %s", m.Name, path, m.Engine, m.Context, m.Name))
}

// useRecipe takes a recipe's repository, engine, quantization and name,
// and adds what get fetches (--add).
func (f *getFlags) useRecipe(pos []string) (*recipes.Recipe, []string, error) {
	if f.recipe == "" {
		return nil, pos, nil
	}
	r, err := recipes.Find(f.recipe)
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	if len(pos) > 0 {
		return nil, nil, usagef("--recipe %s names the repository (%s): give no REPO", r.Name, r.Repo)
	}
	f.add, f.engine = true, r.Model.Engine
	if f.quant == "" {
		f.quant = r.Quant
	}
	if f.name == "" {
		f.name = r.Name
	}
	return r, []string{r.Repo}, nil
}

// resolve fits the repository — and when its folder holds a download
// begun at another commit, goes on with that one: a download is one
// commit, whatever the branch did since.
func (f *getFlags) resolve(e *env, c *config.Config, hc *hub.Client, env hub.Env, ref hub.Ref) (*fit.Result, error) {
	boxes := boxes(e.ctx, c, f.cf.status)
	dest := destFor(c, f.to, env)
	res, err := fit.Run(e.ctx, c, hc, f.request(ref), boxes, dest)
	if err != nil || f.to != "models" {
		return res, err
	}
	src, err := fetch.ReadSource(res.Download.Dest)
	if err != nil || src.Complete || src.Repo != res.Repo || src.Commit == res.Commit || src.Revision != ref.Revision {
		return res, nil
	}
	fmt.Fprintf(e.stderr, "%s: a download of commit %s began here; finishing that one (%s is at %s now: get again afterwards to update)\n",
		res.Download.Dest, short(src.Commit), ref.Revision, short(res.Commit))
	at := ref
	at.Revision = src.Commit
	res, err = fit.Run(e.ctx, c, hc, f.request(at), boxes, dest)
	if err == nil {
		res.Revision, res.Resolved.Revision = ref.Revision, ref.Revision
	}
	return res, err
}

func short(commit string) string { return commit[:min(12, len(commit))] }

func (f *getFlags) layout(res *fit.Result, env hub.Env) fetch.Layout {
	if f.to == "hf-cache" {
		return &fetch.HFCache{Cache: env.Cache, Repo: res.Repo, Commit: res.Commit}
	}
	return &fetch.Folder{Path: res.Download.Dest}
}

// entry is the config entry --add writes: the engine asked for, else the
// first whose verdict on this box is good; the context it fits at; the
// flags the plan adds; the path relative to <root>/models (a GGUF's file,
// or hf:org/name@commit for the cache).
func (f *getFlags) entry(c *config.Config, res *fit.Result, l fetch.Layout) (newModel, error) {
	var v *fit.Verdict
	if len(res.Boxes) > 0 {
		for i := range res.Boxes[0].Verdicts {
			if cand := &res.Boxes[0].Verdicts[i]; v == nil && (cand.Good() || cand.Verdict == fit.FitsShorter) {
				v = cand
			}
		}
	}
	if v == nil {
		why := "no engine was judged"
		if len(res.Boxes) > 0 && len(res.Boxes[0].Verdicts) > 0 {
			why = res.Boxes[0].Verdicts[0].Engine + ": " + res.Boxes[0].Verdicts[0].Words
		}
		return newModel{}, fmt.Errorf("the files are in %s, but models.%s was not added: it does not fit this box (%s)", l.Dir(), res.Name, why)
	}
	m := newModel{Name: res.Name, Engine: v.Engine, Runtime: f.runtime, Context: v.Context, Args: v.AddedArgs,
		Comment: fmt.Sprintf("%s@%s (gantry get)", res.Repo, short(res.Commit))}
	if v.Verdict == fit.FitsShorter {
		m.Context = v.MaxContext
	}
	if f.to == "hf-cache" {
		m.Path = "hf:" + res.Repo + "@" + res.Commit
	} else {
		m.Path = l.Dir()
		if rel, err := filepath.Rel(filepath.Join(c.Root, "models"), l.Dir()); err == nil && !strings.HasPrefix(rel, "..") {
			m.Path = rel
		}
	}
	if res.Format == "gguf" && len(res.Selection.Quants) > 0 {
		for _, q := range res.Selection.Quants {
			if q.Name == res.Quant && len(q.Files) > 0 {
				m.Path = filepath.ToSlash(filepath.Join(m.Path, q.Files[0]))
			}
		}
	}
	if _, ok := c.Models[m.Name]; ok {
		return newModel{}, fmt.Errorf("models.%s is in the config already: the files are in %s; choose another name with --name to add them", m.Name, l.Dir())
	}
	return m, nil
}

// getView shows a download: bars on a terminal, a line per step on a
// pipe, events as JSON lines with --json.
type getView struct {
	e     *env
	json  bool
	tty   bool
	lines int // lines drawn last time (terminal)
	last  time.Time
}

func newGetView(e *env, asJSON bool) *getView {
	return &getView{e: e, json: asJSON, tty: !asJSON && isTerminal(e.stderr)}
}

// plan says what will happen, before the first byte.
func (v *getView) plan(r *fit.Result) {
	if v.json {
		jsonLine(v.e.stdout, map[string]any{"type": "fit", "fit": r}) // a closed stdout ends the verb with its own error
		return
	}
	w := v.e.stderr
	fmt.Fprintf(w, "%s@%s → commit %s: %s in %d files → %s\n", r.Repo, r.Revision, short(r.Commit),
		config.FormatBytes(r.Download.Bytes), r.Download.Files, r.Download.Dest)
	how := "family " + r.Family + " from the model's type (" + r.Model.ModelType + ")"
	if r.Model.ModelType == "" {
		how = "family " + r.Family + " from the organisation"
	}
	fmt.Fprintf(w, "  %s, name %s", how, r.Name)
	if r.Quant != "" {
		fmt.Fprintf(w, ", quantization %s", r.Quant)
	}
	fmt.Fprintln(w)
	if len(r.Download.Skipped) > 0 {
		fmt.Fprintf(w, "  left out: %s\n", skippedWords(r.Download.Skipped))
	}
	if len(r.Boxes) > 0 {
		for _, vd := range r.Boxes[0].Verdicts {
			fmt.Fprintf(w, "  %s on %s: %s\n", vd.Engine, r.Boxes[0].Name, vd.Words)
		}
	}
}

func (v *getView) event(ev fetch.Event) {
	switch {
	case v.json:
		jsonLine(v.e.stdout, ev) // a closed stdout ends the verb with its own error
	case v.tty:
		v.draw(ev)
	default:
		v.line(ev)
	}
}

// line prints a step on a pipe: each file's start and end, and progress
// at most every 5 seconds.
func (v *getView) line(ev fetch.Event) {
	w := v.e.stderr
	switch ev.Type {
	case fetch.EventPlan, fetch.EventWait, fetch.EventRetry:
		fmt.Fprintf(w, "%s: %s\n", ev.Type, ev.Msg)
	case fetch.EventFile:
		if ev.Done > 0 {
			fmt.Fprintf(w, "fetching %s (%s, resuming at %s)\n", ev.Path, config.FormatBytes(ev.Total), config.FormatBytes(ev.Done))
		} else {
			fmt.Fprintf(w, "fetching %s (%s)\n", ev.Path, config.FormatBytes(ev.Total))
		}
	case fetch.EventVerified:
		fmt.Fprintf(w, "verified %s\n", ev.Path)
	case fetch.EventProgress:
		if time.Since(v.last) >= 5*time.Second {
			v.last = time.Now()
			fmt.Fprintln(w, overall(ev))
		}
	}
}

func overall(ev fetch.Event) string {
	s := fmt.Sprintf("%s of %s", config.FormatBytes(ev.Done), config.FormatBytes(ev.Total))
	if ev.Rate > 0 {
		s += fmt.Sprintf(", %s/s, %s left", config.FormatBytes(int64(ev.Rate)), (time.Duration(ev.ETA) * time.Second).Round(time.Second))
	}
	return s
}

// draw redraws the bars: one per file being fetched, then the total.
func (v *getView) draw(ev fetch.Event) {
	w := v.e.stderr
	switch ev.Type {
	case fetch.EventProgress:
	case fetch.EventFile:
		return
	default:
		v.clear()
		v.line(ev)
		return
	}
	v.clear()
	var b strings.Builder
	for _, a := range ev.Active {
		fmt.Fprintf(&b, "%s%s %s/%s\n", progressBar(percent(a.Done, a.Total), 20), trunc(a.Path, 48), config.FormatBytes(a.Done), config.FormatBytes(a.Total))
	}
	fmt.Fprintf(&b, "%stotal %s\n", progressBar(percent(ev.Done, ev.Total), 20), overall(ev))
	io.WriteString(w, b.String())
	v.lines = strings.Count(b.String(), "\n")
}

func (v *getView) clear() {
	if v.lines > 0 {
		fmt.Fprintf(v.e.stderr, "\033[%dA\033[J", v.lines)
		v.lines = 0
	}
}

func percent(done, total int64) int {
	if total <= 0 {
		return -1
	}
	return int(done * 100 / total)
}

func (v *getView) finish() {
	if v.tty {
		v.clear()
	}
}

// jsonLine writes v as one line of JSON: get --json is a stream of
// events, one per line.
func jsonLine(w io.Writer, v any) {
	json.NewEncoder(w).Encode(v) //nolint:errcheck // stdout gone: nothing to tell
}

func (v *getView) done(dl *fetch.Result, added string) error {
	if v.json {
		if added != "" {
			jsonLine(v.e.stdout, map[string]any{"type": "added", "message": added})
		}
		return nil
	}
	fmt.Fprintf(v.e.stdout, "%s: %d files, %s (%s fetched, %s were there)\n", dl.Dest, dl.Files,
		config.FormatBytes(dl.Bytes), config.FormatBytes(dl.Fetched), config.FormatBytes(dl.Reused))
	if added != "" {
		fmt.Fprintln(v.e.stdout, added)
	}
	return nil
}

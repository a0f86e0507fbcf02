package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/plan"
)

// localBox describes this machine for planning: nvidia-smi, else
// /proc/meminfo, and the config's memory settings.
func localBox(ctx context.Context, c *config.Config) plan.Box {
	return plan.MakeBox(c, gpu.Detect(ctx, gpu.NvidiaSMI, gpu.ReadMemInfo), 0)
}

// configPath is --config, else $GANTRY_CONFIG, else the default path.
func configPath(flagValue string) (path string, explicit bool) {
	if flagValue != "" {
		return flagValue, true
	}
	if v := os.Getenv("GANTRY_CONFIG"); v != "" {
		return v, true
	}
	return config.DefaultPath(), false
}

// loadConfig loads the config; with allowDemo and no file at the default
// place it returns the built-in demo (demo = true). A config named
// explicitly must exist.
func loadConfig(flagValue string, allowDemo bool) (c *config.Config, demo bool, err error) {
	path, explicit := configPath(flagValue)
	c, err = config.Load(path)
	if errors.Is(err, config.ErrNotFound) && allowDemo && !explicit {
		return config.Demo(), true, nil
	}
	if errors.Is(err, config.ErrNotFound) {
		return nil, false, fmt.Errorf("%w (run `gantry init` to write a starter config, or pass --config)", err)
	}
	return c, false, err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONLine writes v as one line of JSON (for streams a script reads
// line by line).
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// validate is the one validation of a config file that `config validate`
// and `doctor` both run: decoding, every rule of the config itself, and
// what only the files and the box can tell — estimates, paths that do not
// exist, known-bad engine × checkpoint × GPU combinations, models that
// cannot fit. Every problem is reported in one run: an unset ${env.X} or a
// structural error elsewhere does not hide a model's missing path, nor
// does an error in the model's own other keys (planProblems). c is nil when the file
// has errors of its own (err says why it could not be read at all).
func validate(ctx context.Context, path string) (c *config.Config, probs config.Problems, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", path, config.ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	return validateBytes(ctx, path, data)
}

// planProblems runs every check of the planner that the config's problems
// probs leave runnable (plan.Checkable) and returns what it finds: the
// whole plan (paths, files, rules, reservations) of a model whose engine
// and planned keys are sound, and at least the files of one whose path:
// is — so a bad image: or engine: does not hide a missing path.
func planProblems(ctx context.Context, c *config.Config, probs config.Problems) config.Problems {
	box := localBox(ctx, c)
	plans := map[string]*plan.Model{}
	var filesOnly []string
	for _, name := range c.ModelNames() {
		switch files, whole := plan.Checkable(c, c.Models[name], probs); {
		case whole:
			plans[name] = plan.One(c, c.Models[name], box, nil)
		case files:
			filesOnly = append(filesOnly, name)
		}
	}
	return append(plan.Problems(c, plans), plan.FileProblems(c, filesOnly, nil)...)
}

func runConfig(e *env, args []string) error {
	if len(args) == 0 || args[0] != "validate" {
		return usagef("usage: gantry config validate [--config P] [--json]")
	}
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	cfgFlag := fs.String("config", "", "config file")
	asJSON := fs.Bool("json", false, "print problems (and the effective config) as JSON")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) == 1 && *cfgFlag == "" { // `gantry config validate FILE` reads naturally too
		*cfgFlag = pos[0]
	} else if len(pos) > 0 {
		return usagef("gantry config validate takes no arguments besides --config")
	}
	path, _ := configPath(*cfgFlag)
	c, probs, err := validate(e.ctx, path)
	if err != nil {
		if *asJSON {
			writeJSON(e.stdout, map[string]any{"valid": false, "file": path, "problems": []any{map[string]any{"message": err.Error()}}}) //nolint:errcheck // the exit code says invalid either way
			return &ExitError{Code: 1}
		}
		return err
	}
	if *asJSON {
		return printValidation(e.stdout, path, c, probs)
	}
	for _, p := range probs {
		fmt.Fprintln(e.stdout, p.String())
	}
	if n := probs.Errors(); n > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s: %d problem(s); nothing was changed", path, n)}
	}
	fmt.Fprintf(e.stdout, "%s: valid — %s, %s, %s, gateway on %s\n", path, plural(len(c.Models), "model"),
		plural(len(c.Slots), "slot"), plural(len(c.Profiles), "profile"), c.Listen)
	return nil
}

// shownConfig is the config as config validate --json prints it: a copy
// whose models' args and commands hide their secrets as ps does, and
// whose URLs carry no user name or password.
func shownConfig(c *config.Config) *config.Config {
	out := *c
	out.Models = copyEach(c.Models, func(m *config.Model) { m.Args, m.Command = config.RedactArgv(m.Args), config.RedactArgv(m.Command) })
	out.Services = copyEach(c.Services, func(s *config.Service) { s.URL = config.RedactURL(s.URL) })
	out.Peers = copyEach(c.Peers, func(p *config.Peer) { p.URL = config.RedactURL(p.URL) })
	return &out
}

// copyEach is m with each value copied and then changed by fix.
func copyEach[T any](m map[string]*T, fix func(*T)) map[string]*T {
	out := make(map[string]*T, len(m))
	for name, v := range m {
		if v != nil {
			c := *v
			fix(&c)
			out[name] = &c
		}
	}
	return out
}

// printValidation is `config validate --json`: the verdict, the problems
// and, when the file decoded, the effective config — defaults filled in,
// keys and env left out, other secrets replaced.
func printValidation(w io.Writer, path string, c *config.Config, probs config.Problems) error {
	type jp struct {
		Line    int    `json:"line,omitempty"`
		Path    string `json:"path,omitempty"`
		Message string `json:"message"`
		Warning bool   `json:"warning,omitempty"`
	}
	out := []jp{}
	for _, p := range probs {
		out = append(out, jp{p.Line, p.Path, p.Msg, p.Warning})
	}
	res := map[string]any{"valid": probs.Errors() == 0, "file": path, "problems": out}
	redact := strings.NewReplacer()
	if c != nil {
		res["config"] = shownConfig(c)
		redact = config.Redactor(c)
	}
	var buf strings.Builder
	if err := writeJSON(&buf, res); err != nil {
		return err
	}
	if _, err := io.WriteString(w, redact.Replace(buf.String())); err != nil {
		return err
	}
	if probs.Errors() > 0 {
		return &ExitError{Code: 1}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

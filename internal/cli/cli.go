// Package cli implements gantry's verbs. Run is the whole program but for
// the process exit: cmd/gantry maps its error to an exit code with ExitCode.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// ExitError carries a specific exit code; its message may be empty when the
// verb already printed what went wrong.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// usageError marks a wrong command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// ExitCode maps an error from Run to the process exit code: 0 for nil, 130
// for a cancelled context (Ctrl-C), 2 for usage errors, an ExitError's own
// code, else 1.
func ExitCode(err error) int {
	var ee *ExitError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, context.Canceled):
		return 130
	case errors.As(err, &ue), errors.Is(err, flag.ErrHelp):
		return 2
	}
	return 1
}

// env is what every verb gets.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
}

type verb struct {
	name    string
	args    string
	summary string
	run     func(e *env, args []string) error
}

func verbs() []verb {
	return []verb{
		{"serve", "[--config P]", "run the daemon: gateway, scheduler, admin API, dashboard", runServe},
		{"ps", "[--json]", "list models with state, port, pid, memory and load", runPS},
		{"start", "MODEL", "start a model and wait until it is ready", runStart},
		{"stop", "MODEL", "stop a model", runStop},
		{"switch", "SLOT MODEL", "switch a slot to another member, draining the old one", runSwitch},
		{"profile", "[NAME | --none]", "show or switch the active profile", runProfile},
		{"logs", "[-f] [-n N] MODEL", "show (and follow) a model's engine log", runLogs},
		{"events", "[--json]", "follow gantry's events: state changes, load progress, switches, evictions, failures", runEvents},
		{"pull", "MODEL… | --all", "pull the container images of docker-runtime models, with progress", runPull},
		{"top", "", "a live view: models, load progress, memory, in-flight, tokens/s, the last requests (q quits)", runTop},
		{"activity", "[-f] [--model M] [--since S] [-n N] [--by key|model|day] [--json]", "the activity log: each request's model, key, status, tokens, speed; totals; usage by key, model or day", runActivity},
		{"chat", "MODEL PROMPT|-", "send one user message, stream the answer, print tokens/s", runChat},
		{"check", "[--all] [--json]", "sanity checks: health and a one-token test per model, services", runCheck},
		{"models", "[--json] [--root DIR]", "models on disk, configured and served, with size and estimate", runModels},
		{"inspect", "PATH|MODEL [--context N]", "what a model is: format, quantization, weights, KV cache, estimate, rules", runInspect},
		{"fit", "REPO[@REV] [--engine E]", "before downloading: does a Hub model fit this box and its peers, with which engine, at what context", runFit},
		{"get", "REPO[@REV] [--add]", "download a Hub model (one commit, resumable, verified) into <root>/models or the HF cache", runGet},
		{"recipes", "[-v] [--json]", "models known to work on a DGX Spark, with engine, image, flags and their sources", runRecipes},
		{"doctor", "[--json]", "check the box: GPU, memory, docker, engines, ports, root tree, config", runDoctor},
		{"init", "[--root DIR]", "create the ~/ai tree and a starter config from the models found", runInit},
		{"docs", "[--out DIR]", "write inference_endpoints.md and model_inventory.md", runDocs},
		{"export", "kubernetes [--namespace N] [--models a,b] [--out DIR]", "write Kubernetes manifests: per model a Deployment, Service and Inference Extension routing", runExport},
		{"units", "[--out DIR] [--per-model] [--user NAME]", "write systemd units: gantry.service, and per model with --per-model", runUnits},
		{"config", "validate [--config P]", "check a config file and list every problem", runConfig},
		{"sim", "[--port N] [--flavor F] ...", "run the simulated engine (for tests, demos, benchmarks)", runSim},
		{"completion", "bash|zsh", "print the shell completion script", runCompletion},
		{"version", "", "print gantry's version", runVersion},
	}
}

// Run runs gantry with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, stdin: os.Stdin}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return &ExitError{Code: 2}
		}
		return nil
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	if args[0] == "__names" { // for the completion script; not listed
		return runNames(e, args[1:])
	}
	for _, v := range verbs() {
		if v.name == args[0] {
			return v.run(e, args[1:])
		}
	}
	return usagef("unknown verb %q%s (gantry help lists them)", args[0], verbHint(args[0]))
}

// subVerbs are words people type as verbs that are a verb's second word.
var subVerbs = map[string]string{"validate": "config validate"}

// verbHint is ": did you mean gantry X?" for an unknown verb close to a
// known one, "" when none is close.
func verbHint(v string) string {
	if s, ok := subVerbs[v]; ok {
		return fmt.Sprintf("; did you mean `gantry %s`?", s)
	}
	var names []string
	for _, vb := range verbs() {
		names = append(names, vb.name)
	}
	if c := config.Closest(v, names); c != "" {
		return fmt.Sprintf("; did you mean `gantry %s`?", c)
	}
	return ""
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "gantry — one OpenAI-compatible endpoint for the LLM engines on this box")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: gantry VERB [flags] [args]")
	fmt.Fprintln(w)
	for _, v := range verbs() {
		fmt.Fprintf(w, "  %-8s %-28s %s\n", v.name, v.args, v.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Client verbs take --server URL and --token (env GANTRY_SERVER, GANTRY_TOKEN).")
	fmt.Fprintln(w, "Config: --config P, else $GANTRY_CONFIG, else ~/ai/configs/gantry/gantry.yaml.")
}

// parseFlags parses flags that may stand before or after positional
// arguments ("gantry start b --server URL"); "--" ends the flags.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, usagef("usage of gantry %s:\n%s", fs.Name(), flagHelp(fs))
			}
			return nil, usagef("gantry %s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func flagHelp(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

func runVersion(e *env, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, map[string]string{"version": Version})
	}
	fmt.Fprintf(e.stdout, "gantry %s\n", Version)
	return nil
}

package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/export/kube"
	"github.com/gantryhq/gantry/internal/plan"
)

func runExport(e *env, args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cfgFlag := fs.String("config", "", "config file")
	ns := fs.String("namespace", "", "namespace of the objects (default kubernetes.namespace, else gantry)")
	models := fs.String("models", "", "models to export, separated by commas (default all)")
	out := fs.String("out", "", "folder to write one manifest per model into (default: print them)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "kubernetes" {
		return usagef("usage: gantry export kubernetes [--namespace N] [--models a,b] [--out DIR]")
	}
	path, _ := configPath(*cfgFlag)
	c, err := config.LoadKeepingUnsetEnv(path)
	if errors.Is(err, config.ErrNotFound) {
		return fmt.Errorf("%w (pass --config)", err)
	}
	if err != nil {
		return err
	}
	opt := kube.Options{Namespace: *ns, Plans: plan.Make(c, kube.PlanBox(c), nil)}
	if *models != "" {
		opt.Models = strings.Split(*models, ",")
	}
	res, err := kube.Export(c, opt)
	if err != nil {
		return err
	}
	header := kube.Header(res)
	for _, n := range res.Notes {
		fmt.Fprintf(e.stderr, "note: %s\n", n)
	}
	if *out == "" {
		b, err := kube.Marshal(header, res.Files...)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, f := range res.Files {
		b, err := kube.Marshal(header, f)
		if err != nil {
			return err
		}
		p := filepath.Join(*out, f.Name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s\n", p)
	}
	fmt.Fprintf(e.stdout, "apply: kubectl apply --server-side -f %s (the Secret %s holds the models' ${env.X} values)\n", *out, c.Kube().Secret)
	return nil
}

package cli

import (
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/gantryhq/gantry/internal/fit"
	"github.com/gantryhq/gantry/internal/recipes"
)

func runRecipes(e *env, args []string) error {
	fs := flag.NewFlagSet("recipes", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	verbose := fs.Bool("v", false, "show each recipe's settings and sources")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	all, err := recipes.All()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, all)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENGINE\tREPOSITORY\tWHAT")
	for _, r := range all {
		repo := r.Repo
		if r.Quant != "" {
			repo += " (" + r.Quant + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Model.Engine, repo, r.Title)
	}
	tw.Flush()
	if *verbose {
		for _, r := range all {
			fmt.Fprintf(e.stdout, "\n%s: %s\n  engine %s", r.Name, r.Title, r.Model.Engine)
			if r.Model.Image != "" {
				fmt.Fprintf(e.stdout, ", image %s", r.Model.Image)
			}
			if r.Model.Context > 0 {
				fmt.Fprintf(e.stdout, ", context %d", r.Model.Context)
			}
			if len(r.Model.Args) > 0 {
				fmt.Fprintf(e.stdout, ", args %q", r.Model.Args)
			}
			fmt.Fprintln(e.stdout)
			for _, s := range r.Sources {
				fmt.Fprintf(e.stdout, "  source: %s — %s\n", s.What, s.URL)
			}
		}
	}
	fmt.Fprintln(e.stdout, "\ngantry get --recipe NAME downloads one and adds it to the config; gantry fit REPO first says whether it fits.")
	return nil
}

// recipeEntry is the config entry of a recipe, at the place get put it.
func recipeEntry(r *recipes.Recipe, res *fit.Result, path, name string) newModel {
	m := newModel{Name: name, Engine: r.Model.Engine, Runtime: r.Model.Runtime, Image: r.Model.Image, Context: r.Model.Context,
		Memory: r.Model.Memory, Args: r.Model.Args, Env: r.Model.Env, Path: path,
		Comment: fmt.Sprintf("recipe %s: %s@%s (gantry get)", r.Name, res.Repo, short(res.Commit))}
	return m
}

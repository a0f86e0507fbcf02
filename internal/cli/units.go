package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/systemd"
)

func runUnits(e *env, args []string) error {
	fs := flag.NewFlagSet("units", flag.ContinueOnError)
	cfgFlag := fs.String("config", "", "config file the units use")
	out := fs.String("out", "", "folder to write the unit files into (default: print them)")
	perModel := fs.Bool("per-model", false, "also write gantry-<model>.service per model (systemd supervises the engine, not gantry)")
	bin := fs.String("binary", "", "gantry's path in ExecStart (default: this binary)")
	user := fs.String("user", "", "the user the units run as (User=); default root")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("gantry units takes no arguments")
	}
	if *user != "" && !systemd.ValidUser(*user) {
		return usagef("gantry units --user %q: not a user name systemd takes (letters, digits, _ and -)", *user)
	}
	path, _ := configPath(*cfgFlag)
	c, demo, err := loadConfig(*cfgFlag, true)
	if err != nil {
		return err
	}
	if demo {
		fmt.Fprintf(e.stderr, "note: %s does not exist yet; the unit points at it anyway\n", path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	self := *bin
	if self == "" {
		if self, err = os.Executable(); err != nil {
			return err
		}
	}
	files := map[string]string{"gantry.service": systemd.Gantry(self, path, *user)}
	if *perModel {
		plans := plan.Make(c, localBox(e.ctx, c), nil)
		for _, n := range c.ModelNames() {
			m := c.Models[n]
			l, err := launch.Build(m, launch.Host{Config: c, Self: self}, plans[n].Resources())
			if err != nil {
				return err
			}
			files["gantry-"+n+".service"] = systemd.Model(m, l, *user)
		}
	}
	names := sortedNames(files)
	if *out == "" {
		for _, n := range names {
			fmt.Fprintf(e.stdout, "# %s\n%s\n", n, files[n])
		}
		return nil
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, n := range names {
		p := filepath.Join(*out, n)
		if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s\n", p)
	}
	fmt.Fprintf(e.stdout, "install: sudo cp %s/*.service /etc/systemd/system/ && sudo systemctl daemon-reload && sudo systemctl enable --now gantry\n", *out)
	return nil
}

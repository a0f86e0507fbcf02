package cli

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/gantryhq/gantry/internal/daemon"
)

func runServe(e *env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgFlag := fs.String("config", "", "config file (default $GANTRY_CONFIG, else ~/ai/configs/gantry/gantry.yaml)")
	listen := fs.String("listen", "", "override listen: from the config")
	verbose := fs.Bool("v", false, "log debug messages")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("gantry serve takes no arguments (got %q)", pos[0])
	}
	cfg, demo, err := loadConfig(*cfgFlag, true)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
		if probs := cfg.Validate(); probs.Errors() > 0 {
			return probs
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	lg := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	if demo {
		path, _ := configPath("")
		fmt.Fprintf(e.stderr, "gantry: no config at %s — serving the built-in DEMO (simulated engines, no GPU used).\n", path)
		fmt.Fprintf(e.stderr, "gantry: logs of the demo go to %s; run `gantry init` to write a real config.\n", cfg.Root)
	}
	return daemon.Run(e.ctx, cfg, daemon.Options{
		Logger:  lg,
		Version: Version,
		Ready: func(addr string) {
			fmt.Fprintf(e.stderr, "gantry: serving on http://%s (OpenAI base URL http://%s/v1)\n", addr, dialable(addr))
		},
	})
}

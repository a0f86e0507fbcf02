package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // for --pprof only: its handlers sit on the default mux, which gantry's API does not use
	"os"
	"runtime"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/daemon"
	"github.com/gantryhq/gantry/internal/guard"
)

func runServe(e *env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgFlag := fs.String("config", "", "config file (default $GANTRY_CONFIG, else ~/ai/configs/gantry/gantry.yaml)")
	listen := fs.String("listen", "", "override listen: from the config")
	verbose := fs.Bool("v", false, "log debug messages")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("gantry serve takes no arguments (got %q)", pos[0])
	}
	if *pprofAddr != "" && !config.IsLoopback(*pprofAddr) {
		return usagef("--pprof %s: the profiler listens on loopback only (e.g. 127.0.0.1:6060); reach it from elsewhere through ssh -L", *pprofAddr)
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
	if *pprofAddr != "" {
		if err := servePprof(e, *pprofAddr); err != nil {
			return err
		}
	}
	// gantry relays bytes and decides; the engines beside it (their
	// tokenizers, schedulers, Python front ends) need the CPU. Unless
	// GOMAXPROCS says otherwise, gantry takes a quarter of the cores, at
	// least two (one serialises a burst of arrivals: BENCHMARKS.md): five
	// on a 20-core Spark.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(min(runtime.NumCPU(), max(2, runtime.NumCPU()/4)))
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

// servePprof serves Go's profiler on addr, a loopback address (runServe
// refuses any other): the profiler has no key, and what it shows (goroutines, heap)
// and does (a 30 s CPU profile) is for the box's own user. Every door's
// Host check and cross-site refusal stand before it, so a web page cannot
// reach it through a rebound DNS name or a form either.
func servePprof(e *env, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof: %w", err)
	}
	h := guard.New(addr, nil, nil).Wrap(http.DefaultServeMux, func(string) bool { return false })
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // a debugging aid; it ends with the process
	fmt.Fprintf(e.stderr, "gantry: profiler on http://%s/debug/pprof/\n", ln.Addr())
	return nil
}

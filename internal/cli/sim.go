package cli

import (
	"flag"
	"strings"

	"github.com/gantryhq/gantry/internal/sim"
)

func runSim(e *env, args []string) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	o := sim.Options{}
	fs.IntVar(&o.Port, "port", 30100, "port to listen on")
	fs.StringVar(&o.Host, "host", "127.0.0.1", "address to listen on")
	fs.StringVar(&o.Model, "model", "sim", "model name to serve")
	fs.StringVar(&o.Flavor, "flavor", "vllm", "health semantics of: "+strings.Join(sim.Flavors, ", "))
	fs.DurationVar(&o.LoadTime, "load-time", 0, "time to load the model before becoming ready")
	fs.DurationVar(&o.TTFT, "ttft", 0, "time to first token")
	fs.DurationVar(&o.ITL, "itl", 0, "time between tokens")
	fs.IntVar(&o.Tokens, "tokens", 16, "tokens per completion")
	fs.BoolVar(&o.Embed, "embedding", false, "serve /v1/embeddings")
	fs.IntVar(&o.Dims, "dims", 64, "embedding dimensions")
	fs.BoolVar(&o.StampEvents, "stamp-events", false, `add "sim_unix_ns", the send instant, to every streamed event`)
	fs.IntVar(&o.CrashAfter, "crash-after", 0, "exit after N requests (0 = never)")
	fs.BoolVar(&o.HangLoad, "hang-load", false, "never become ready")
	fs.BoolVar(&o.Progress, "progress", false, "print the engine's real load lines (shard and graph bars) during --load-time")
	fs.BoolVar(&o.LoadUntilSignal, "load-until-signal", false, "load until SIGUSR1 arrives instead of for --load-time")
	fs.IntVar(&o.FailHealthAfter, "fail-health-after", 0, "health fails after N good answers (0 = never)")
	fs.BoolVar(&o.IgnoreSIGTERM, "ignore-sigterm", false, "ignore SIGTERM")
	fs.BoolVar(&o.SpawnChild, "spawn-child", false, "start a grandchild in the same process group")
	fs.BoolVar(&o.IdleChild, "idle-child", false, "internal: be the grandchild")
	fs.IntVar(&o.NNodes, "nnodes", 1, "ranks of a model across nodes (as SGLang's flag)")
	fs.IntVar(&o.NodeRank, "node-rank", 0, "this process's rank: 0 serves, ≥ 1 answer health only")
	fs.StringVar(&o.DistInitAddr, "dist-init-addr", "", "rank 0's HOST:PORT where the ranks meet")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("gantry sim takes no arguments, only flags (got %q)", pos[0])
	}
	if err := o.Validate(); err != nil {
		return usagef("gantry sim: %v", err)
	}
	return sim.Run(e.ctx, o, e.stderr)
}

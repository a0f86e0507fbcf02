// Package daemon wires gantry serve together: the scheduler, the admin API
// and the gateway on one listener, started and stopped in order.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gantryhq/gantry/internal/api"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/gateway"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/metrics"
	"github.com/gantryhq/gantry/internal/sched"
)

// Options for Run.
type Options struct {
	Logger *slog.Logger
	// Ready, when set, is called once the listener accepts connections,
	// with its address.
	Ready func(addr string)
	// Sched passes through to the scheduler (tests tune backoff and memory).
	Sched sched.Options
	// Version is reported by gantry_build_info.
	Version string
}

// Run serves cfg until ctx is done, then stops every engine it started and
// returns. A cancelled ctx is a clean stop (nil).
func Run(ctx context.Context, cfg *config.Config, o Options) error {
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	hub := api.NewHub()
	so := o.Sched
	so.Logger = lg
	var met *metrics.Metrics
	so.OnEvent = func(ev sched.Event) {
		hub.Publish(ev)
		if met != nil {
			met.Event(ev)
			if ev.LoadSeconds > 0 {
				met.Started(ev.Model, time.Duration(ev.LoadSeconds*float64(time.Second)))
			}
		}
	}
	s, err := sched.New(cfg, so)
	if err != nil {
		return err
	}
	var gpuFn func() gpu.Facts
	if box := s.Box(); len(box.Facts.GPUs) > 0 {
		gpuFn = gpu.Cached(5*time.Second, func() gpu.Facts {
			return gpu.Detect(context.Background(), gpu.NvidiaSMI, gpu.SystemMemory)
		})
	}
	met = metrics.New(o.Version, s, gpuFn)
	keys := auth.New(cfg.Auth.APIKeys, cfg.Auth.AdminKeys)
	if keys.Open() && !config.IsLoopback(cfg.Listen) {
		s.Close(context.Background()) //nolint:errcheck // nothing started yet
		return fmt.Errorf("listen %s is reachable from other machines but auth.api_keys is empty: refusing to serve an open gateway", cfg.Listen)
	}
	mux := http.NewServeMux()
	api.New(s, hub, lg).Register(mux, keys.Admin)
	mux.Handle("GET /metrics", keys.Admin(met.Handler()))
	gw := gateway.New(s, lg, met)
	defer gw.Close()
	gw.Register(mux, keys.Gateway)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.Close(context.Background()) //nolint:errcheck // nothing started yet
		return fmt.Errorf("listen on %s: %w (is another gantry running? set listen: in the config)", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(lg.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	lg.Info("gantry listening", "addr", ln.Addr().String(), "models", len(cfg.Models))
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	s.Boot(ctx)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	lg.Info("gantry stopping: stopping engines")
	shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(shCtx) //nolint:errcheck // long streams are cut; engines matter more
	cancel()
	cerr := s.Close(context.Background())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, cerr)
}

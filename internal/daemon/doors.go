package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/guard"
)

// door is one address gantry serves on: the main listener, Ollama's API,
// a model's or a slot's own address. Every door wears the same guard
// (Host check, cross-site refusal, CORS) with its own address.
type door struct {
	name   string // the config key it comes from, for messages
	addr   string
	policy *guard.Policy
	srv    *http.Server
	ln     net.Listener
}

// doors are all of gantry's listeners.
type doors struct {
	lg   *slog.Logger
	list []*door
	errc chan error
}

func newDoors(lg *slog.Logger) *doors { return &doors{lg: lg, errc: make(chan error, 8)} }

// open listens on addr; admin says which paths are the admin API's.
func (ds *doors) open(name, addr string, cfg *config.Config, h http.Handler, admin func(string) bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is another gantry, or an engine, on that port?)", name, addr, err)
	}
	d := &door{name: name, addr: addr, ln: ln, policy: guard.New(addr, cfg.AllowedHosts, cfg.CORS.AllowedOrigins)}
	d.srv = &http.Server{
		Handler: d.policy.Wrap(h, admin),
		// Slow clients are cut: headers within 10 s, the whole request
		// (body included) within 2 minutes. No write time-out: streams last.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(ds.lg.Handler(), slog.LevelDebug),
	}
	ds.list = append(ds.list, d)
	return nil
}

// serve starts every door; a door that stops serving reports on errc.
func (ds *doors) serve() {
	for _, d := range ds.list {
		go func() { ds.errc <- d.srv.Serve(d.ln) }()
		ds.lg.Info("gantry listening", "on", d.name, "addr", d.ln.Addr().String())
	}
}

// update applies a reloaded config's hosts and origins to every door.
func (ds *doors) update(cfg *config.Config) {
	for _, d := range ds.list {
		d.policy.Update(d.addr, cfg.AllowedHosts, cfg.CORS.AllowedOrigins)
	}
}

// close closes every door's listener without serving (an early error).
func (ds *doors) close() {
	for _, d := range ds.list {
		d.ln.Close()
	}
}

// shutdown stops every door, cutting what still runs after 5 s.
func (ds *doors) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, d := range ds.list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.srv.Shutdown(ctx) //nolint:errcheck // long streams are cut; engines matter more
		}()
	}
	wg.Wait()
}

// isAdminPath reports whether a path on the main listener is the admin
// API's (whose state-changing requests need JSON).
func isAdminPath(p string) bool {
	return strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/upstream/")
}

// isUpstreamPath is the admin part of the other doors, where /api/ is
// Ollama's.
func isUpstreamPath(p string) bool { return strings.HasPrefix(p, "/upstream/") }

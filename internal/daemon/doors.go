package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/guard"
)

// door is one address gantry serves on: the main listener, Ollama's API,
// a model's or a slot's own address. Every door wears the same guard
// (Host check, cross-site refusal, CORS) with its own address.
type door struct {
	name    string // the config key it comes from, for messages
	addr    string
	policy  *guard.Policy
	srv     *http.Server
	ln      net.Listener
	pinned  bool        // a model's or slot's own door, opened and closed on reload
	removed atomic.Bool // closed on purpose: its end is no error
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
	_, err := ds.add(name, addr, cfg, h, admin)
	return err
}

func (ds *doors) add(name, addr string, cfg *config.Config, h http.Handler, admin func(string) bool) (*door, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is another gantry, or an engine, on that port?)", name, addr, err)
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
	return d, nil
}

// serve starts every door; a door that stops serving reports on errc.
func (ds *doors) serve() {
	for _, d := range ds.list {
		ds.serveOne(d)
	}
}

func (ds *doors) serveOne(d *door) {
	go func() {
		err := d.srv.Serve(d.ln)
		if !d.removed.Load() {
			ds.errc <- err
		}
	}()
	ds.lg.Info("gantry listening", "on", d.name, "addr", d.ln.Addr().String())
}

// openPinned opens the config's model and slot doors (models.<name>.listen,
// slots.<slot>.listen) that are not open yet and closes those the config
// no longer has; handler builds a door's handler. On a reload a door that
// cannot open is logged and left out (the rest of the config applies).
func (ds *doors) openPinned(cfg *config.Config, handler func(config.Door) http.Handler, admin func(string) bool, serve bool) error {
	want := map[string]config.Door{}
	for _, d := range cfg.Doors() {
		if d.Model != "" || d.Slot != "" {
			want[d.Key+" "+d.Addr] = d
		}
	}
	keep := ds.list[:0]
	for _, d := range ds.list {
		if _, ok := want[d.name+" "+d.addr]; d.pinned && !ok {
			d.removed.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d.srv.Shutdown(ctx) //nolint:errcheck // streams still open are cut
			cancel()
			ds.lg.Info("gantry stopped listening", "on", d.name, "addr", d.addr)
			continue
		}
		delete(want, d.name+" "+d.addr)
		keep = append(keep, d)
	}
	ds.list = keep
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(want)) {
		cd := want[k]
		d, err := ds.add(cd.Key, cd.Addr, cfg, handler(cd), admin)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.pinned = true
		if serve {
			ds.serveOne(d)
		}
	}
	return errors.Join(errs...)
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

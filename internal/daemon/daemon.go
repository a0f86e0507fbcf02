// Package daemon wires gantry serve together: the scheduler, the admin API
// and the gateway on one listener, started and stopped in order.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/api"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/dashboard"
	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/gateway"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/metrics"
	"github.com/gantryhq/gantry/internal/peers"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/sdnotify"
	"github.com/gantryhq/gantry/internal/statefile"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/telemetry"
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
	// One gantry per root: a second one would take the first one's
	// engines for leftovers and stop them. Taken before anything reads
	// or writes the root's state.
	lock, err := statefile.LockRoot(cfg.Root, statefile.Owner{PID: os.Getpid(), Listen: cfg.Listen, Since: time.Now()})
	if err != nil {
		return err
	}
	defer lock.Unlock()
	limitMemory(cfg)
	hub := api.NewHub()
	// The peers are watched from the start: a model across nodes starts
	// its other ranks through them.
	peerSet := peers.New(cfg, func(ev status.Event) {
		lg.Info("peer "+ev.To, "peer", ev.Model, "err", ev.Reason)
		hub.Publish(ev)
	})
	defer peerSet.Close()
	so := o.Sched
	so.Logger = lg
	if so.Docker == nil {
		// The Engine API client (DOCKER_HOST honoured) for docker-runtime
		// models; it connects on first use.
		d, err := container.New()
		if err != nil {
			lg.Warn("no Docker client: docker-runtime models cannot start", "err", err)
		} else {
			so.Docker = d
			defer d.Close()
		}
	}
	so.NewRunner = runners(peerSet, lg, so.Docker)
	// Nothing emits events before Boot (New starts no engine, adoption
	// happens in Boot): the handler reads s, gw and met, all set by then.
	tel, err := openTracer(cfg, lg, o.Version)
	if err != nil {
		return err
	}
	defer shutdownTracer(lg, tel) // after the doors: the last requests' spans go out
	var (
		s   *sched.Scheduler
		gw  *gateway.Gateway
		met *metrics.Metrics
	)
	so.OnEvent = func(ev status.Event) {
		hub.Publish(ev)
		if ev.Kind == status.KindState && (ev.To == string(status.Failed) || ev.To == string(status.Stopped)) {
			// Pooled connections to a dead engine would fail the next
			// request on its restarted successor.
			if p, err := s.Process(ev.Model); err == nil {
				gw.EngineGone(p.Launch().BaseURL)
			}
		}
		if ev.Kind == status.KindState {
			sdnotify.Status(summary(s.Status())) //nolint:errcheck // systemd's status line is best effort
		}
		met.Event(ev)
		tel.Event(ev)
		if ev.LoadSeconds > 0 {
			met.Started(ev.Model, time.Duration(ev.LoadSeconds*float64(time.Second)))
		}
	}
	s, err = sched.New(cfg, so)
	if err != nil {
		return err
	}
	current := cfg
	var gpuFn func() gpu.Facts
	if box := s.Box(); len(box.Facts.GPUs) > 0 {
		gpuFn = gpu.Cached(5*time.Second, func() gpu.Facts {
			return gpu.Detect(context.Background(), gpu.NvidiaSMI, gpu.ReadMemInfo)
		})
	}
	met = metrics.New(o.Version, s, gpuFn)
	if gpuFn != nil {
		s.SetGPUSource(gpuFn)
	}
	keys := auth.FromConfig(cfg.Auth)
	if keys.Open() && !config.IsLoopback(cfg.Listen) {
		s.Close(context.Background()) //nolint:errcheck // nothing started yet
		return fmt.Errorf("listen %s is reachable from other machines but auth.api_keys is empty: refusing to serve an open gateway", cfg.Listen)
	}
	met.SetKeys(keys.Names())
	act, err := openActivity(cfg, lg, met, keys)
	if err != nil {
		s.Close(context.Background()) //nolint:errcheck // nothing started yet
		return fmt.Errorf("%w (set activity.keep_days: 0 to run without the activity log)", err)
	}
	defer act.Close() // after the doors: the last requests are written
	mux := http.NewServeMux()
	adm := api.New(s, hub, lg)
	if cfg.Activity.On() {
		adm.SetActivity(act)
	}
	adm.SetPeers(peerSet)
	// Downloads (POST /api/models/get) run until gantry stops; they hold
	// no memory budget.
	adm.SetDownloads(fetch.NewManager(ctx))
	adm.Register(mux, keys.Admin)
	mux.Handle("GET /metrics", keys.Admin(met.Handler()))
	mux.Handle("GET /{$}", dashboard.Handler())
	gw = gateway.New(s, lg, observer{met: met, hub: hub})
	defer gw.Close()
	gw.SetActivity(act, keys.Name)
	gw.SetPeers(peerSet)
	gw.SetTracer(tel)
	gw.Register(mux, gateway.Wraps{Gateway: keys.Gateway, GatewayAnthropic: keys.GatewayShaped(gateway.AnthropicShape), Admin: keys.Admin})

	ds := newDoors(lg)
	if err := ds.open("listen", cfg.Listen, cfg, mux, isAdminPath); err != nil {
		s.Close(context.Background()) //nolint:errcheck // nothing started yet
		return fmt.Errorf("%w; set listen: in the config", err)
	}
	if oa := cfg.OllamaAPI; oa != nil {
		omux := http.NewServeMux()
		gw.RegisterOllama(omux, gateway.Wraps{Gateway: keys.GatewayShaped(gateway.OllamaShape), Admin: keys.Admin})
		if err := ds.open("ollama_api.listen", oa.Listen, cfg, omux, isUpstreamPath); err != nil {
			ds.close()
			s.Close(context.Background()) //nolint:errcheck // nothing started yet
			return err
		}
	}
	pinnedDoor := func(d config.Door) http.Handler {
		m := http.NewServeMux()
		gw.Register(m, gateway.Wraps{Gateway: keys.Gateway, GatewayAnthropic: keys.GatewayShaped(gateway.AnthropicShape), Admin: keys.Admin})
		// The engine's own health check, open as the engines' is (and as
		// gantry's /healthz): the state only, no key needed.
		m.HandleFunc("GET /health", gw.DoorHealth)
		m.HandleFunc("GET /healthz", gw.DoorHealth)
		return gateway.Pinned(gateway.Pin{Model: d.Model, Slot: d.Slot}, m)
	}
	if err := ds.openPinned(cfg, pinnedDoor, isUpstreamPath, false); err != nil {
		ds.close()
		s.Close(context.Background()) //nolint:errcheck // nothing started yet
		return err
	}
	// Adoption first: a request that reached a model before its engine
	// was adopted would start a second one (the listeners are open, so
	// clients queue rather than being refused; nothing is accepted yet).
	s.Boot(ctx)
	ds.serve()
	addr := ds.list[0].ln.Addr().String()
	if o := lock.Owner(); o.Listen != addr {
		o.Listen = addr
		lock.SetOwner(o) //nolint:errcheck // the address shown to a second gantry; the lock itself holds
	}
	lg.Info("gantry serving", "addr", addr, "models", len(cfg.Models))
	if o.Ready != nil {
		o.Ready(addr)
	}
	sdnotify.Ready(summary(s.Status())) //nolint:errcheck

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-ds.errc:
			break loop
		case <-usr2:
			// Exit and leave the engines running: the next gantry (an
			// upgrade) adopts them instead of loading them again.
			lg.Info("SIGUSR2: exiting and leaving the engines to the next gantry")
			sdnotify.Stopping() //nolint:errcheck
			ds.shutdown()
			s.Detach()
			return nil
		case <-hup:
			if next := reload(ctx, lg, s, keys, current); next != nil {
				current = next
				met.SetKeys(keys.Names())
				peerSet.Update(next)
				ds.update(next)
				if err := ds.openPinned(next, pinnedDoor, isUpstreamPath, true); err != nil {
					lg.Error("reload: a listener did not open", "err", err)
				}
			}
		}
	}
	sdnotify.Stopping() //nolint:errcheck
	lg.Info("gantry stopping: stopping engines")
	ds.shutdown()
	cerr := s.Close(context.Background())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, cerr)
}

// openTracer is the tracer of the config's telemetry: section (nil when
// there is none: tracing off).
func openTracer(cfg *config.Config, lg *slog.Logger, version string) (*telemetry.Tracer, error) {
	t := cfg.Telemetry
	if t == nil {
		return nil, nil
	}
	lg.Info("tracing requests", "to", telemetry.TracesURL(t.OTLPEndpoint), "sample", t.Sample)
	return telemetry.New(t, version, telemetry.Options{Logger: lg})
}

// shutdownTracer sends the spans still buffered, for at most 5 s.
func shutdownTracer(lg *slog.Logger, tel *telemetry.Tracer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		lg.Warn("telemetry: the last spans were not sent", "err", err)
	}
}

// openActivity opens the activity log, or with it off a store that keeps
// nothing: every finished request's record (its usage read) counts for its
// key either way — the metrics per key, and its tokens against its tpm.
func openActivity(cfg *config.Config, lg *slog.Logger, met *metrics.Metrics, keys *auth.Keys) (*activity.Store, error) {
	onRecord := func(r activity.Record) {
		met.KeyUsage(r)
		if k := keys.ByName(r.Key); k != nil && k.Limit != nil && r.Tokens != nil {
			k.Limit.Spend(time.Now(), r.Tokens.Prompt+r.Tokens.Completion)
		}
	}
	ao := activity.Options{Logger: lg, OnRecord: onRecord}
	if cfg.Activity.On() {
		ao.Dir, ao.KeepDays, ao.KeepRows = filepath.Join(cfg.Root, "state", "activity"), cfg.Activity.KeepDays, cfg.Activity.KeepRows
	}
	return activity.Open(ao)
}

// reload re-reads the config file on SIGHUP. A config with any problem is
// refused and the running one stays; otherwise only the models whose
// settings changed are restarted. It returns the new config, or nil.
func reload(ctx context.Context, lg *slog.Logger, s *sched.Scheduler, keys *auth.Keys, cur *config.Config) *config.Config {
	sdnotify.Reloading()                      //nolint:errcheck
	defer sdnotify.Ready(summary(s.Status())) //nolint:errcheck
	if cur.File == "" {
		lg.Warn("reload: gantry runs the built-in demo; there is no file to reload")
		return nil
	}
	next, err := config.Load(cur.File)
	if err == nil && keysOpen(next) && !config.IsLoopback(cur.Listen) {
		err = fmt.Errorf("auth.api_keys is empty but gantry listens on %s", cur.Listen)
	}
	if err != nil {
		lg.Error("reload refused; the running config stays", "file", cur.File, "err", err)
		sdnotify.Status("reload refused: " + firstLine(err.Error())) //nolint:errcheck
		return nil
	}
	if next.Root != cur.Root {
		lg.Warn("root changed; it takes effect when gantry restarts", "running", cur.Root, "config", next.Root)
		next.Root = cur.Root
	}
	if next.Listen != cur.Listen {
		lg.Warn("listen changed; it takes effect when gantry restarts", "running", cur.Listen, "config", next.Listen)
		next.Listen = cur.Listen
	}
	if !reflect.DeepEqual(next.OllamaAPI, cur.OllamaAPI) {
		lg.Warn("ollama_api changed; it takes effect when gantry restarts")
		next.OllamaAPI = cur.OllamaAPI
	}
	if !reflect.DeepEqual(next.Telemetry, cur.Telemetry) {
		lg.Warn("telemetry changed; it takes effect when gantry restarts")
		next.Telemetry = cur.Telemetry
	}
	ch, err := s.Reload(ctx, next)
	if err != nil {
		lg.Error("reload refused; the running config stays", "file", cur.File, "err", err)
		return nil
	}
	keys.Set(next.Auth)
	limitMemory(next)
	lg.Info("config reloaded", "restarted", ch.Restarted, "added", ch.Added, "removed", ch.Removed, "kept", len(ch.Kept))
	return next
}

// memoryHeadroom is what gantry's heap holds besides request bodies: its
// state, streams' buffers, the activity queue (tens of MiB at 500 streams).
const memoryHeadroom = 128 << 20

// limitMemory sets Go's soft memory limit to max_body_total plus the
// headroom, unless GOMEMLIMIT says otherwise. max_body_total bounds the
// bodies held at once, but a finished request's body stays in memory
// until the next GC, which by default waits for the heap to double: twenty
// 31 MB bodies under a 256 MiB cap peaked at 435 MB. Near the limit the GC
// runs sooner (a body is a byte slice: nothing in it to scan).
func limitMemory(c *config.Config) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(c.MaxBodyTotal) + memoryHeadroom)
	}
}

func keysOpen(c *config.Config) bool { return c.Auth.GatewayOpen() }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// summary is the one line systemctl status shows.
func summary(st status.Status) string {
	n := map[string]int{}
	for _, m := range st.Models {
		n[string(m.State)]++
	}
	return fmt.Sprintf("%d models: %d ready, %d starting, %d failed; %s of %s reserved", len(st.Models), n["ready"], n["starting"],
		n["failed"], config.FormatBytes(st.Memory.ReservedBytes), config.FormatBytes(st.Memory.BudgetBytes))
}

// observer sends each finished request to the metrics and, for the
// dashboard's live charts, to the event stream.
type observer struct {
	met *metrics.Metrics
	hub *api.Hub
}

func (o observer) Request(model, route string, code int, total, ttfb time.Duration, chunks int) {
	o.met.Request(model, route, code, total, ttfb, chunks)
	if o.hub.Subscribers() > 0 {
		o.hub.Publish(status.Event{Kind: status.KindRequest, Model: model, Reason: route, Code: code, Time: time.Now(),
			TTFBMS: float64(ttfb.Microseconds()) / 1000, DurationMS: float64(total.Microseconds()) / 1000, Chunks: chunks})
	}
}

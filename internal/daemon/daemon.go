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
	"github.com/gantryhq/gantry/internal/trim"
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
	// The heap is trimmed a second after the last request in flight ends,
	// at most every ten seconds: a trim is two collections and the free
	// pages returned, a few milliseconds of CPU. Not at start: an idle
	// gantry has not collected once, and a first collection's own
	// structures cost more than the start's garbage it would free.
	d := &server{lg: lg, hub: api.NewHub(), current: cfg, quiet: trim.New(time.Second, 10*time.Second, lg)}
	defer d.quiet.Stop()
	// The peers are watched from the start: a model across nodes starts
	// its other ranks through them.
	d.peers = peers.New(cfg, func(ev status.Event) {
		lg.Info("peer "+ev.To, "peer", ev.Model, "err", ev.Reason)
		d.hub.Publish(ev)
	})
	defer d.peers.Close()
	so, closeDocker := d.schedOptions(o.Sched)
	defer closeDocker()
	if d.tel, err = openTracer(cfg, lg, o.Version); err != nil {
		return err
	}
	defer shutdownTracer(lg, d.tel) // after the doors: the last requests' spans go out
	// Nothing emits events before Boot (New starts no engine, adoption
	// happens in Boot): the handler reads s, gw and met, all set by then.
	so.OnEvent = d.onEvent
	if d.s, err = sched.New(cfg, so); err != nil {
		return err
	}
	act, err := d.metricsKeysActivity(cfg, o.Version)
	if err != nil {
		d.s.Close(context.Background()) //nolint:errcheck // nothing started yet
		return err
	}
	defer act.Close() // after the doors: the last requests are written
	mux := d.handlers(ctx, cfg, act)
	defer d.gw.Close()
	if err := d.openDoors(cfg, mux); err != nil {
		d.s.Close(context.Background()) //nolint:errcheck // nothing started yet
		return err
	}
	// Adoption first: a request that reached a model before its engine
	// was adopted would start a second one (the listeners are open, so
	// clients queue rather than being refused; nothing is accepted yet).
	d.s.Boot(ctx)
	d.ds.serve()
	addr := d.ds.list[0].ln.Addr().String()
	if ow := lock.Owner(); ow.Listen != addr {
		ow.Listen = addr
		lock.SetOwner(ow) //nolint:errcheck // the address shown to a second gantry; the lock itself holds
	}
	lg.Info("gantry serving", "addr", addr, "models", len(cfg.Models))
	if o.Ready != nil {
		o.Ready(addr)
	}
	sdnotify.Ready(summary(d.s.Status())) //nolint:errcheck // systemd's notify is best effort (none outside systemd)
	return d.serve(ctx)
}

// server is one `gantry serve`: the parts Run wires together, which the
// event handler, the reload and the signal loop share.
type server struct {
	lg      *slog.Logger
	hub     *api.Hub
	peers   *peers.Set
	tel     *telemetry.Tracer
	quiet   *trim.Quiet // trims the heap when the gateway is quiet
	s       *sched.Scheduler
	gw      *gateway.Gateway
	met     *metrics.Metrics
	keys    *auth.Keys
	ds      *doors
	current *config.Config // the config in force, replaced by each reload
}

// schedOptions completes the scheduler's options: the runners (Ollama's
// shared server, a model across nodes through the peers) and the Engine
// API client for docker-runtime models; closeDocker closes that client.
func (d *server) schedOptions(so sched.Options) (_ sched.Options, closeDocker func()) {
	so.Logger = d.lg
	closeDocker = func() {}
	if so.Docker == nil {
		// The Engine API client (DOCKER_HOST honoured); it connects on
		// first use.
		dc, err := container.New()
		if err != nil {
			d.lg.Warn("no Docker client: docker-runtime models cannot start", "err", err)
		} else {
			so.Docker, closeDocker = dc, func() { dc.Close() }
		}
	}
	so.NewRunner = runners(d.peers, d.lg, so.Docker)
	return so, closeDocker
}

// onEvent is the scheduler's event handler: the event stream, the metrics
// and traces, the gateway's pool and systemd's status line.
func (d *server) onEvent(ev status.Event) {
	d.hub.Publish(ev)
	if ev.Kind == status.KindState && (ev.To == string(status.Failed) || ev.To == string(status.Stopped)) {
		// Pooled connections to a dead engine would fail the next
		// request on its restarted successor.
		if p, err := d.s.Process(ev.Model); err == nil {
			d.gw.EngineGone(p.Launch().BaseURL)
		}
	}
	if ev.Kind == status.KindState {
		sdnotify.Status(summary(d.s.Status())) //nolint:errcheck // systemd's status line is best effort
	}
	d.met.Event(ev)
	d.tel.Event(ev)
	if ev.LoadSeconds > 0 {
		d.met.Started(ev.Model, time.Duration(ev.LoadSeconds*float64(time.Second)))
	}
}

// metricsKeysActivity sets up the metrics (with live GPU figures when the
// box has GPUs), the keys — refusing an open gateway reachable from other
// machines — and the activity log.
func (d *server) metricsKeysActivity(cfg *config.Config, version string) (*activity.Store, error) {
	var gpuFn func() gpu.Facts
	if box := d.s.Box(); len(box.Facts.GPUs) > 0 {
		gpuFn = gpu.Cached(5*time.Second, func() gpu.Facts {
			return gpu.Detect(context.Background(), gpu.NvidiaSMI, gpu.ReadMemInfo)
		})
	}
	d.met = metrics.New(version, d.s, gpuFn)
	if gpuFn != nil {
		d.s.SetGPUSource(gpuFn)
	}
	d.keys = auth.FromConfig(cfg.Auth)
	if d.keys.Open() && !config.IsLoopback(cfg.Listen) {
		return nil, fmt.Errorf("listen %s is reachable from other machines but auth.api_keys is empty: refusing to serve an open gateway", cfg.Listen)
	}
	d.met.SetKeys(d.keys.Names())
	act, err := openActivity(cfg, d.lg, d.met, d.keys)
	if err != nil {
		return nil, fmt.Errorf("%w (set activity.keep_days: 0 to run without the activity log)", err)
	}
	return act, nil
}

// handlers builds the main listener's routes: the admin API, metrics,
// the dashboard and the gateway (d.gw, which the caller closes).
func (d *server) handlers(ctx context.Context, cfg *config.Config, act *activity.Store) *http.ServeMux {
	keys := d.keys
	mux := http.NewServeMux()
	adm := api.New(d.s, d.hub, d.lg)
	if cfg.Activity.On() {
		adm.SetActivity(act)
	}
	adm.SetPeers(d.peers)
	// Downloads (POST /api/models/get) run until gantry stops; they hold
	// no memory budget.
	adm.SetDownloads(fetch.NewManager(ctx))
	adm.Register(mux, keys.Admin)
	mux.Handle("GET /metrics", keys.Admin(d.met.Handler()))
	mux.Handle("GET /{$}", dashboard.Handler())
	d.gw = gateway.New(d.s, d.lg, observer{met: d.met, hub: d.hub})
	d.gw.SetActivity(act, keys.Name)
	d.gw.SetPeers(d.peers)
	d.gw.SetTracer(d.tel)
	d.gw.SetQuiet(d.quiet)
	d.gw.Register(mux, gateway.Wraps{Gateway: keys.Gateway, GatewayAnthropic: keys.GatewayShaped(gateway.AnthropicShape), Admin: keys.Admin})
	return mux
}

// openDoors opens every listener: the main one, Ollama's API, each
// model's and slot's own address. On an error none stays open.
func (d *server) openDoors(cfg *config.Config, mux *http.ServeMux) error {
	d.ds = newDoors(d.lg)
	if err := d.ds.open("listen", cfg.Listen, cfg, mux, isAdminPath); err != nil {
		return fmt.Errorf("%w; set listen: in the config", err)
	}
	if oa := cfg.OllamaAPI; oa != nil {
		omux := http.NewServeMux()
		d.gw.RegisterOllama(omux, gateway.Wraps{Gateway: d.keys.GatewayShaped(gateway.OllamaShape), Admin: d.keys.Admin})
		if err := d.ds.open("ollama_api.listen", oa.Listen, cfg, omux, isUpstreamPath); err != nil {
			d.ds.close()
			return err
		}
	}
	if err := d.ds.openPinned(cfg, d.pinnedDoor, isUpstreamPath, false); err != nil {
		d.ds.close()
		return err
	}
	return nil
}

// pinnedDoor is the handler of a model's or slot's own address: the whole
// gateway, every request to that model.
func (d *server) pinnedDoor(door config.Door) http.Handler {
	m := http.NewServeMux()
	d.gw.Register(m, gateway.Wraps{Gateway: d.keys.Gateway, GatewayAnthropic: d.keys.GatewayShaped(gateway.AnthropicShape), Admin: d.keys.Admin})
	// The engine's own health check, open as the engines' is (and as
	// gantry's /healthz): the state only, no key needed.
	m.HandleFunc("GET /health", d.gw.DoorHealth)
	m.HandleFunc("GET /healthz", d.gw.DoorHealth)
	return gateway.Pinned(gateway.Pin{Model: door.Model, Slot: door.Slot}, m)
}

// serve runs until ctx is done or a listener fails — reloading on SIGHUP,
// leaving the engines to the next gantry on SIGUSR2 — then stops the
// engines.
func (d *server) serve(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-d.ds.errc:
			break loop
		case <-usr2:
			// Exit and leave the engines running: the next gantry (an
			// upgrade) adopts them instead of loading them again.
			d.lg.Info("SIGUSR2: exiting and leaving the engines to the next gantry")
			sdnotify.Stopping() //nolint:errcheck // systemd's notify is best effort
			d.ds.shutdown()
			d.s.Detach()
			return nil
		case <-hup:
			d.reload(ctx)
		}
	}
	sdnotify.Stopping() //nolint:errcheck // systemd's notify is best effort
	d.lg.Info("gantry stopping: stopping engines")
	d.ds.shutdown()
	cerr := d.s.Close(context.Background())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, cerr)
}

// reload applies the config file again (SIGHUP): the scheduler, the keys,
// the peers and the doors.
func (d *server) reload(ctx context.Context) {
	next := reload(ctx, d.lg, d.s, d.keys, d.current)
	if next == nil {
		return
	}
	d.current = next
	d.met.SetKeys(d.keys.Names())
	d.peers.Update(next)
	d.ds.update(next)
	if err := d.ds.openPinned(next, d.pinnedDoor, isUpstreamPath, true); err != nil {
		d.lg.Error("reload: a listener did not open", "err", err)
	}
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
	sdnotify.Reloading()                      //nolint:errcheck // systemd's notify is best effort
	defer sdnotify.Ready(summary(s.Status())) //nolint:errcheck // systemd's notify is best effort
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
		sdnotify.Status("reload refused: " + firstLine(err.Error())) //nolint:errcheck // systemd's notify is best effort
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

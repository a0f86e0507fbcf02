// Package supervise runs engine processes: each in its own process group,
// its output in a rotated log, its readiness probed by its engine's rule,
// restarted with backoff when it should be always on, and stopped so that
// no child survives.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/progress"
	"github.com/gantryhq/gantry/internal/status"
)

// Event reports a state change of one model's engine.
type Event struct {
	Model  string       `json:"model"`
	From   status.State `json:"from"`
	To     status.State `json:"to"`
	Reason string       `json:"reason,omitempty"`
	Time   time.Time    `json:"time"`
}

// Options tune a Process; zero values take the defaults.
type Options struct {
	// Restart restarts the engine when it dies or fails to start (always-on
	// models), after a backoff that doubles from BackoffMin up to BackoffMax.
	Restart    bool
	BackoffMin time.Duration // default 1s
	BackoffMax time.Duration // default 2m
	// StableAfter is how long an engine must stay ready for its failure
	// count (and so the backoff) to start afresh. Default 5m.
	StableAfter time.Duration
	// ProbeMin and ProbeMax bound the readiness probe interval: it starts at
	// ProbeMin so a fast engine is seen at once and grows to ProbeMax.
	ProbeMin time.Duration // default 10ms
	ProbeMax time.Duration // default 100ms
	// OnEvent, when set, is called (synchronously, without locks held) on
	// every state change.
	OnEvent func(Event)
	Logger  *slog.Logger
	// LogMaxBytes and LogKeep rotate the log file (default 20 MiB, 3 kept).
	LogMaxBytes int64
	LogKeep     int
	// Redact replaces secrets in the engine's output before it is kept.
	Redact *strings.Replacer
	// Registry records the engine before it is spawned, for the next
	// gantry to adopt or stop (nil: not recorded).
	Registry *Registry
	// OnProgress, when set, is called (without locks held) when the
	// engine's output shows its load reached a new phase or step.
	OnProgress func(model string, step progress.Step)
	// BeforeSpawn, when set, runs before each launch of the engine (not
	// an adoption); when it acts it names its phase of the start with
	// phase, and what it returns is noted in the engine's log. The
	// scheduler frees the page cache here on unified memory.
	BeforeSpawn func(ctx context.Context, model *config.Model, phase func(string)) (note string)
	// Prepare, when set, runs before each launch (not an adoption), after
	// BeforeSpawn: what the engine needs elsewhere first (a model across
	// nodes: the other ranks). Its error fails the start — with the
	// restart and backoff of any failed start — and nothing is launched.
	Prepare func(ctx context.Context) error
	// Key names the engine in the registry; default the model's name.
	Key string
	// Docker runs the engines whose launch is a container (runtime:
	// docker); nil when no daemon is configured. Root labels them as this
	// gantry's (its root folder).
	Docker *container.Client
	Root   string
}

// Process supervises the engine of one model. Its state machine:
//
//	stopped  --Start-->            starting
//	failed   --Start / backoff-->  starting   (backoff only with Restart)
//	starting --probe says ready--> ready
//	starting --exit, start_timeout, bad launch--> failed (group killed)
//	starting --Stop or ctx done--> stopping
//	ready    --process exits-->    failed     (rest of the group killed)
//	ready    --Stop-->             stopping
//	stopping --group gone-->       stopped
//
// Start called while starting waits for the same start; Start on a ready
// engine returns at once. Stop always ends with no process of the group
// alive: SIGTERM (or docker stop), stop_timeout, then SIGKILL to the group.
type Process struct {
	model  *config.Model
	launch engine.Launch
	health engine.Health // the engine's readiness rule
	opts   Options
	log    *Log
	logger *slog.Logger
	client *http.Client
	spec   string // hash of the launch, for adoption

	mu        sync.Mutex
	state     status.State
	reason    string
	phase     string
	detail    string
	pid       int
	starts    int
	failures  int // consecutive, for backoff
	startedAt time.Time
	readyAt   time.Time
	cur       *run     // the current process, nil when none
	attempt   Attempts // the start under way, joined by every Start
	retry     *time.Timer
	closed    bool
	detached  bool          // by Detach: the next gantry watches the engine
	done      chan struct{} // closed by endTail: ends the tail
	tailOnce  sync.Once
	kick      chan struct{} // wakes the tail when a start begins
	adopted   bool

	// prog follows the load's progress in the engine's output (fed by
	// the log's hook).
	prog *progress.Tracker
}

// run is one OS process of the engine.
type run struct {
	cmd     *exec.Cmd
	pgid    int
	ctr     string        // the container's ID, for a docker-runtime engine
	token   string        // its identity in the registry (TokenEnv)
	exited  chan struct{} // closed after Wait returns
	exitErr error
	cancel  context.CancelFunc // cancels the start attempt's probing
}

// New prepares the supervision of model m, launched as l; it opens the log
// at logPath and starts nothing.
func New(m *config.Model, l engine.Launch, logPath string, opts Options) (*Process, error) {
	health, err := launch.Health(m)
	if err != nil {
		return nil, err
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 2 * time.Minute
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = 5 * time.Minute
	}
	if opts.ProbeMin <= 0 {
		opts.ProbeMin = 10 * time.Millisecond
	}
	if opts.ProbeMax <= 0 {
		opts.ProbeMax = 100 * time.Millisecond
	}
	if opts.LogMaxBytes == 0 {
		opts.LogMaxBytes = 20 << 20
	}
	if opts.LogKeep == 0 {
		opts.LogKeep = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Key == "" {
		opts.Key = m.Name
	}
	lg, err := NewLog(logPath, opts.LogMaxBytes, opts.LogKeep, 500)
	if err != nil {
		return nil, err
	}
	lg.SetRedactor(opts.Redact)
	p := &Process{
		model: m, launch: l, health: health, opts: opts, log: lg,
		logger: opts.Logger.With("model", m.Name, "engine", m.Engine),
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		state:  status.Stopped, done: make(chan struct{}), kick: make(chan struct{}, 1),
		spec: specOf(l.Argv, l.Env, l.DockerName),
		prog: progress.NewTracker(time.Second, engine.LoadProgress()),
	}
	lg.AddHook(p.prog.Feed)
	go p.tail()
	return p, nil
}

// tail reads the engine's log file into memory: every 10 ms while it
// starts (a ready line triggers the readiness probe at once), every 250 ms
// otherwise.
func (p *Process) tail() {
	for {
		d := 250 * time.Millisecond
		if p.State() == status.Starting {
			d = 10 * time.Millisecond
		}
		select {
		case <-p.done:
			return
		case <-p.kick: // a start began: poll fast from now on
		case <-time.After(d):
		}
		p.log.Poll()
		p.reportProgress()
	}
}

// reportProgress hands a new load step to OnProgress.
func (p *Process) reportProgress() {
	if p.opts.OnProgress == nil {
		return
	}
	st, fresh := p.prog.Take(time.Now())
	if fresh && p.State() == status.Starting {
		p.opts.OnProgress(p.model.Name, st)
	}
}

// Progress is the load's latest step, read from the engine's output, and
// when the load began.
func (p *Process) Progress() (progress.Step, time.Time) {
	return p.prog.Current()
}

// SetRestart turns restarting after failures on or off (a profile switch
// makes a model always-on or on-demand). Turning it off cancels a pending
// restart.
func (p *Process) SetRestart(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opts.Restart = on
	if !on && p.retry != nil {
		p.retry.Stop()
		p.retry = nil
	}
}

// Model is the model this process serves.
func (p *Process) Model() *config.Model { return p.model }

// Launch is what the process runs.
func (p *Process) Launch() engine.Launch { return p.launch }

// Log is the engine's output.
func (p *Process) Log() *Log { return p.log }

// Status is a snapshot of a Process.
type Status struct {
	State     status.State `json:"state"`
	Adopted   bool         `json:"adopted,omitempty"`
	Reason    string       `json:"reason,omitempty"`
	Phase     string       `json:"phase,omitempty"`
	Detail    string       `json:"detail,omitempty"`
	PID       int          `json:"pid,omitempty"`
	Starts    int          `json:"starts"`
	StartedAt time.Time    `json:"started_at,omitzero"`
	ReadyAt   time.Time    `json:"ready_at,omitzero"`
	LastLine  string       `json:"last_log_line,omitempty"`
	// Step is the load's latest step from the engine's output, while it
	// starts (nil otherwise).
	Step *progress.Step `json:"step,omitempty"`
}

// Status returns the current state.
func (p *Process) Status() Status {
	p.mu.Lock()
	s := Status{State: p.state, Reason: p.reason, Phase: p.phase, Detail: p.detail, PID: p.pid,
		Starts: p.starts, StartedAt: p.startedAt, ReadyAt: p.readyAt, Adopted: p.adopted && p.cur != nil}
	p.mu.Unlock()
	s.LastLine = p.log.LastLine()
	if s.State == status.Starting {
		st, _ := p.prog.Current()
		s.Step = &st
	}
	return s
}

// State returns the current state alone (cheaper than Status).
func (p *Process) State() status.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// setState changes the state under p.mu and returns the event to emit
// after unlocking.
func (p *Process) setState(to status.State, reason string) *Event {
	if p.state == to {
		p.reason = reason
		return nil
	}
	ev := &Event{Model: p.model.Name, From: p.state, To: to, Reason: reason, Time: time.Now()}
	p.state, p.reason = to, reason
	return ev
}

func (p *Process) emit(ev *Event) {
	if ev == nil {
		return
	}
	if ev.To == status.Failed {
		p.logger.Warn("engine failed", "reason", ev.Reason)
	} else {
		p.logger.Info("engine "+string(ev.To), "reason", ev.Reason)
	}
	if p.opts.OnEvent != nil {
		p.opts.OnEvent(*ev)
	}
}

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("supervisor is shutting down")

// Start starts the engine if it is not running and waits until it is ready,
// ctx is done, or the start fails. The start itself is bounded by the
// model's start_timeout. A ctx that ends before ready stops the engine only
// if no other caller is waiting for it (the supervisor cannot know, so it
// keeps loading: callers that give up do not waste a load).
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if done, begin, err := p.attempt.Join(p.state, p.model.Name); !begin {
		p.mu.Unlock()
		if done == nil || err != nil {
			return err
		}
		return p.attempt.Wait(ctx, &p.mu, done)
	}
	if p.retry != nil {
		p.retry.Stop()
		p.retry = nil
	}
	done, ev := p.beginLocked()
	p.mu.Unlock()
	p.emit(ev)
	return p.attempt.Wait(ctx, &p.mu, done)
}

// beginLocked launches the process and the goroutine that watches its
// start; p.mu is held.
func (p *Process) beginLocked() (chan struct{}, *Event) {
	p.starts++
	p.startedAt = time.Now()
	p.readyAt = time.Time{}
	p.phase, p.detail, p.pid, p.adopted = "launching", "", 0, false
	p.prog.Reset(p.startedAt)
	done := p.attempt.Begin()
	ev := p.setState(status.Starting, fmt.Sprintf("start %d", p.starts))
	select {
	case p.kick <- struct{}{}:
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.model.StartTimeout.D())
	r := &run{cancel: cancel, exited: make(chan struct{})}
	p.cur = r
	go p.startRun(ctx, r, done, false)
	return done, ev
}

func (p *Process) startRun(ctx context.Context, r *run, done chan struct{}, adopted bool) {
	defer r.cancel()
	var err error
	if !adopted && p.opts.BeforeSpawn != nil {
		phase := func(name string) {
			p.prog.Set(progress.Step{Phase: name, Fraction: -1})
			p.mu.Lock()
			p.phase = name
			p.mu.Unlock()
		}
		if note := p.opts.BeforeSpawn(ctx, p.model, phase); note != "" {
			p.log.Mark("%s", note)
		}
	}
	if !adopted && p.opts.Prepare != nil {
		if err = p.opts.Prepare(ctx); err != nil {
			close(r.exited) // nothing was launched
		}
	}
	if err == nil && !adopted {
		if err = p.portFree(ctx); err != nil {
			close(r.exited) // nothing was launched
		}
	}
	if err == nil && !adopted {
		err = p.spawn(r)
	}
	if err == nil {
		err = p.awaitReady(ctx, r)
	}
	if err != nil {
		// Kill the group before reporting, so a failed start never leaves a
		// half-loaded engine holding memory behind the caller's back.
		p.terminate(context.Background(), r) //nolint:errcheck // the start's own error is what the caller hears
	}
	p.mu.Lock()
	if p.cur != r { // stopped meanwhile; Stop reports the outcome
		if err == nil {
			err = fmt.Errorf("%s was stopped while starting", p.model.Name)
		}
		p.attempt.End(done, err)
		p.mu.Unlock()
		return
	}
	var ev *Event
	if err == nil {
		p.readyAt = time.Now()
		p.phase, p.detail = "ready", ""
		ev = p.setState(status.Ready, fmt.Sprintf("ready after %s", p.readyAt.Sub(p.startedAt).Round(time.Millisecond)))
		go p.watch(r)
	} else {
		ev = p.failLocked(err.Error())
	}
	p.attempt.End(done, err)
	p.mu.Unlock()
	p.emit(ev)
}

// spawn starts the process in its own group (or, for a docker-runtime
// engine, its container through the Engine API).
func (p *Process) spawn(r *run) error {
	l := p.launch
	if l.Container != nil {
		return p.spawnContainer(r)
	}
	p.log.Mark("starting %s (start %d): %s", p.model.Name, p.starts, strings.Join(config.RedactArgv(l.Argv), " "))
	env := append(os.Environ(), l.Env...)
	// The engine writes into its log file itself: no pipe to gantry, so
	// it outlives a gantry that dies and can be adopted by the next one.
	out, err := p.log.Writer()
	if err != nil {
		r.exitErr = err
		close(r.exited)
		return fmt.Errorf("log: %w", err)
	}
	defer out.Close() // the child has its own copy
	// Recorded before it runs: a gantry killed from here on leaves a
	// record by which the next one finds the engine, whatever its command
	// line becomes.
	r.token = newToken()
	rec := Record{Token: r.token, Spec: p.spec, Argv: config.RedactArgv(l.Argv), Port: p.model.Port, Started: time.Now()}
	p.opts.Registry.put(p.opts.Key, rec)
	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Env = append(env, TokenEnv+"="+r.token)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.opts.Registry.drop(p.opts.Key, r.token)
		r.exitErr = err
		close(r.exited)
		return fmt.Errorf("launch %s: %w", l.Argv[0], err)
	}
	r.cmd, r.pgid = cmd, cmd.Process.Pid
	rec.PID, rec.StartTicks = cmd.Process.Pid, startTicks(cmd.Process.Pid)
	p.opts.Registry.put(p.opts.Key, rec)
	p.log.Mark("pid %d (process group %d)", cmd.Process.Pid, cmd.Process.Pid)
	p.mu.Lock()
	p.pid = cmd.Process.Pid
	p.mu.Unlock()
	go func() {
		r.exitErr = cmd.Wait()
		close(r.exited)
	}()
	return nil
}

// awaitReady probes until the engine is ready, its process exits, or ctx
// (start_timeout) ends. The interval starts small so that a fast engine is
// seen at once, and grows so that a 5-minute load is not hammered.
func (p *Process) awaitReady(ctx context.Context, r *run) error {
	interval := p.opts.ProbeMin
	t := time.NewTimer(0)
	defer t.Stop()
	// Engines print a line when they become ready ("Uvicorn running on",
	// "The server is fired up"): probe at once on every new line, so a
	// waiting request reaches a ready engine within milliseconds, not a
	// poll interval.
	_, lines, unfollow := p.log.Follow(0)
	defer unfollow()
	for {
		select {
		case <-lines:
			for len(lines) > 0 {
				<-lines
			}
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-r.exited:
			return fmt.Errorf("exited while starting (%s)%s", exitText(r.exitErr), p.lastLineSuffix())
		case <-ctx.Done():
			p.mu.Lock()
			phase, detail := p.phase, p.detail
			p.mu.Unlock()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not ready after start_timeout %s (last probe: %s %s)%s", p.model.StartTimeout, phase, detail, p.lastLineSuffix())
			}
			return ctx.Err()
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rd := engine.Probe(pctx, p.client, p.launch.BaseURL, p.health)
		cancel()
		if rd.Ready {
			return nil
		}
		p.mu.Lock()
		p.phase, p.detail = rd.Phase, rd.Detail
		p.mu.Unlock()
		t.Reset(interval)
		interval = min(interval*3/2+time.Millisecond, p.opts.ProbeMax)
	}
}

// lastLineSuffix quotes the engine's most telling line (for a Python
// traceback its exception), for a failure's reason.
func (p *Process) lastLineSuffix() string {
	p.log.Poll() // what the engine wrote last, before it went
	if l := p.log.Headline(); l != "" {
		return "; last log line: " + l
	}
	return ""
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// watch waits for a ready process to exit on its own, and checks its
// health every health_interval: an engine that stops answering
// (health_failures checks in a row) is killed with its group and marked
// failed — its in-flight requests end with an error, not a hang — and an
// always-on one is restarted.
func (p *Process) watch(r *run) {
	every := p.model.HealthInterval.D()
	limit := p.model.HealthFailures
	var tick <-chan time.Time
	if every > 0 && limit > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	failures := 0
	for {
		select {
		case <-r.exited:
			p.exited(r)
			return
		case <-tick:
		}
		if p.isDetached() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(every, time.Second))
		rd := engine.Probe(ctx, p.client, p.launch.BaseURL, p.health)
		cancel()
		if rd.Ready {
			failures = 0
			continue
		}
		failures++
		p.log.Mark("health check failed (%d of %d): %s %s", failures, limit, rd.Phase, rd.Detail)
		if failures < limit {
			continue
		}
		// Kill first, then report: a restart must find the port free.
		if r.ctr != "" {
			p.stopContainer(context.Background(), r, min(p.model.StopTimeout.D(), 5*time.Second)) //nolint:errcheck // reported below
		} else {
			signalGroup(r.pgid, syscall.SIGTERM)
			p.killGroup(r, min(p.model.StopTimeout.D(), 5*time.Second))
		}
		p.mu.Lock()
		if p.cur != r || p.state != status.Ready {
			p.mu.Unlock()
			return // stopped meanwhile
		}
		ev := p.failLocked(fmt.Sprintf("stopped answering health checks (%d in a row; last: %s %s)", failures, rd.Phase, rd.Detail))
		p.mu.Unlock()
		p.emit(ev)
		return
	}
}

// exited handles a ready process that exited on its own. The rest of its
// group is killed first — vLLM's EngineCore outlives its parent and keeps
// GPU memory and sockets — and then the failure is reported, so a restart
// finds the port and memory free.
func (p *Process) exited(r *run) {
	if p.isDetached() {
		return
	}
	if r.ctr != "" {
		// A container that ended is removed: the name is free for the next start.
		p.opts.Docker.Remove(context.Background(), r.ctr) //nolint:errcheck // gone already, or the sweep takes it
	} else {
		p.killGroup(r, 0)
	}
	p.mu.Lock()
	if p.cur != r || p.state != status.Ready {
		p.mu.Unlock()
		return // an orderly stop
	}
	ev := p.failLocked(fmt.Sprintf("exited (%s)%s", exitText(r.exitErr), p.lastLineSuffix()))
	p.mu.Unlock()
	p.emit(ev)
}

// isDetached reports whether Detach handed the engine on: the next gantry
// watches it now, and a detached supervisor that went on watching would
// kill what is left of its group and rewrite the engines' record under
// the adopter (within one process, as the tests run two gantries).
func (p *Process) isDetached() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.detached
}

// failLocked moves to failed and, with Restart, schedules the next start.
// A crash after a long healthy run starts the backoff afresh; a crash soon
// after ready counts as one more failure in a row, so a crash loop slows
// down even when each run briefly turns ready.
func (p *Process) failLocked(reason string) *Event {
	if !p.readyAt.IsZero() && time.Since(p.readyAt) >= p.opts.StableAfter {
		p.failures = 0
	}
	p.failures++
	p.pid = 0
	if p.opts.Restart && !p.closed {
		d := p.opts.BackoffMin << min(p.failures-1, 20)
		if d > p.opts.BackoffMax || d <= 0 {
			d = p.opts.BackoffMax
		}
		reason = fmt.Sprintf("%s; restarting in %s", reason, d.Round(time.Millisecond))
		p.retry = time.AfterFunc(d, p.restart)
	}
	p.log.Mark("failed: %s", reason)
	return p.setState(status.Failed, reason)
}

func (p *Process) restart() {
	p.mu.Lock()
	if p.closed || p.state != status.Failed {
		p.mu.Unlock()
		return
	}
	p.retry = nil
	_, ev := p.beginLocked()
	p.mu.Unlock()
	p.emit(ev)
}

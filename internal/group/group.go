// Package group leads a model across nodes: this box runs rank 0 (the
// serving rank) and the other boxes' gantry instances run the other ranks,
// on the engine's own multi-node launch. The leader starts the other ranks
// through their gantry's admin API before rank 0 (so they reserve memory
// on their own budget), takes readiness from rank 0 alone, watches every
// rank, and ends the whole group when one dies: rank 0 is killed like an
// engine that crashed, so an always-on group is restarted — other ranks
// first — with the usual backoff.
package group

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/peers"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// watchEvery is how often the leader asks each other rank's gantry for its
// state while the group runs.
const watchEvery = 500 * time.Millisecond

// Runner is a leader's runner of a model across nodes: rank 0's runner
// (the engine on this box) wrapped with the other ranks' starts, stops and
// watch.
type Runner struct {
	sched.Runner // rank 0
	m            *config.Model
	peers        *peers.Set
	logger       *slog.Logger
	cfg          *config.Config
	docker       *container.Client // nil: no image to compare

	ops sync.Mutex // one start or stop of the other ranks at a time

	mu       sync.Mutex
	gen      int                 // counts starts of the other ranks
	ranks    []status.RankStatus // ranks ≥ 1, as last seen
	stopping bool                // a stop of the whole group is under way
	watching context.CancelFunc
}

// The scheduler's optional interfaces the leader's runner has.
var (
	_ sched.Adopter         = (*Runner)(nil)
	_ sched.RankReporter    = (*Runner)(nil)
	_ sched.ContainerHolder = (*Runner)(nil)
	_ sched.Detacher        = (*Runner)(nil)
)

// killer is rank 0's runner when it can be ended as if it had died.
type killer interface{ Kill(reason string) }

var _ killer = (*supervise.Process)(nil)

// Wrap makes the runner of a leader's model across nodes from its spec:
// rank 0 is built by inner (with a Prepare that starts the other ranks
// first, for restarts too, and an OnEvent that stops them when rank 0
// ends), the other ranks are started through ps.
// Each rank gets the leader's identity (the commit of its files, its
// image) and refuses to start when its own differs.
func Wrap(sp sched.RunnerSpec, ps *peers.Set, logger *slog.Logger, inner sched.NewRunner, docker *container.Client) (sched.Runner, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Runner{m: sp.Model, peers: ps, logger: logger, cfg: sp.Config, docker: docker}
	for i, n := range sp.Model.Nodes[1:] {
		g.ranks = append(g.ranks, status.RankStatus{Rank: i + 1, Node: n, State: status.Stopped})
	}
	prepare, onEvent := sp.Options.Prepare, sp.Options.OnEvent
	sp.Options.Prepare = func(ctx context.Context) error {
		if prepare != nil {
			if err := prepare(ctx); err != nil {
				return err
			}
		}
		return g.startRanks(ctx)
	}
	sp.Options.OnEvent = func(ev supervise.Event) {
		if onEvent != nil {
			onEvent(ev)
		}
		if ev.To == status.Failed || ev.To == status.Stopped {
			// Not here: OnEvent runs on rank 0's own goroutine. A start of
			// the ranks after this event (a restart) makes the stop moot.
			g.mu.Lock()
			gen := g.gen
			g.mu.Unlock()
			go g.stopRanksOf(gen, fmt.Sprintf("rank 0 is %s", ev.To))
		}
	}
	r, err := inner(sp)
	if err != nil {
		return nil, err
	}
	g.Runner = r
	return g, nil
}

// Start starts the other ranks, then rank 0 (rank 0's Prepare), and
// waits for rank 0 to be ready. A rank that cannot start fails the start
// at once, saying which and why (its peer down, no room on its box …).
func (g *Runner) Start(ctx context.Context) error {
	g.watch()
	return g.Runner.Start(ctx)
}

// Adopt adopts rank 0 (a previous gantry started the group) and watches
// the other ranks again.
func (g *Runner) Adopt(ctx context.Context) error {
	a, ok := g.Runner.(sched.Adopter)
	if !ok {
		return errors.New("rank 0's runner cannot adopt")
	}
	if err := a.Adopt(ctx); err != nil {
		return err
	}
	g.watch()
	return nil
}

// Stop stops rank 0 and then every other rank.
func (g *Runner) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopping = true
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.stopping = false
		g.mu.Unlock()
	}()
	err := g.Runner.Stop(ctx)
	g.stopRanks("the group is stopped")
	return err
}

// ContainerID is rank 0's container ("" when it runs none), so that the
// sweep of leftover containers keeps an adopted rank 0.
func (g *Runner) ContainerID() string {
	if c, ok := g.Runner.(sched.ContainerHolder); ok {
		return c.ContainerID()
	}
	return ""
}

// Detach stops watching the other ranks and detaches rank 0, stopping
// nothing: gantry is being replaced, and the next one adopts the group
// (its Adopt watches again).
func (g *Runner) Detach() {
	g.mu.Lock()
	if g.watching != nil {
		g.watching()
		g.watching = nil
	}
	g.mu.Unlock()
	if d, ok := g.Runner.(sched.Detacher); ok {
		d.Detach()
	}
}

// Close stops watching, stops the other ranks and closes rank 0's runner.
func (g *Runner) Close(ctx context.Context) error {
	g.mu.Lock()
	g.stopping = true
	if g.watching != nil {
		g.watching()
		g.watching = nil
	}
	g.mu.Unlock()
	err := g.Runner.Close(ctx)
	g.stopRanks("gantry is closing")
	return err
}

// Ranks is every rank's state: rank 0 here, the others as last seen.
func (g *Runner) Ranks() []status.RankStatus {
	st := g.Runner.Status()
	out := []status.RankStatus{{Rank: 0, Node: config.Local, State: st.State, PID: st.PID, Reason: st.Reason}}
	g.mu.Lock()
	defer g.mu.Unlock()
	return append(out, g.ranks...)
}

// startRanks asks each other rank's gantry to start its rank, in rank
// order. On a failure the ranks already started are stopped again.
func (g *Runner) startRanks(ctx context.Context) error {
	g.ops.Lock()
	defer g.ops.Unlock()
	g.mu.Lock()
	g.gen++
	g.mu.Unlock()
	id := IdentityOf(ctx, g.cfg, g.m, g.docker)
	req, _ := json.Marshal(map[string]any{"nnodes": len(g.m.Nodes), "dist_init_addr": g.m.DistInitAddr,
		"commit": id.Commit, "image": id.Image})
	for i := range g.ranks {
		rank, node := i+1, g.m.Nodes[i+1]
		ms, err := g.call(ctx, node, http.MethodPost, "/rank", req)
		if err != nil {
			g.setRank(i, status.Failed, 0, err.Error())
			g.stopRanksLocked(i, "another rank could not start")
			return fmt.Errorf("rank %d on %s could not start: %v", rank, node, err)
		}
		g.setRank(i, ms.State, ms.PID, ms.Reason)
	}
	return nil
}

// stopRanks stops every other rank (errors are logged: a peer that is
// down has no rank left to stop, or ends it when it comes back).
func (g *Runner) stopRanks(why string) {
	g.ops.Lock()
	defer g.ops.Unlock()
	g.stopRanksLocked(len(g.ranks), why)
}

// stopRanksOf stops the other ranks unless they were started again since
// generation gen.
func (g *Runner) stopRanksOf(gen int, why string) {
	g.ops.Lock()
	defer g.ops.Unlock()
	g.mu.Lock()
	moot := g.gen != gen
	g.mu.Unlock()
	if !moot {
		g.stopRanksLocked(len(g.ranks), why)
	}
}

func (g *Runner) stopRanksLocked(upTo int, why string) {
	for i := 0; i < upTo && i < len(g.ranks); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ms, err := g.call(ctx, g.m.Nodes[i+1], http.MethodPost, "/stop", []byte("{}"))
		cancel()
		if err != nil {
			g.logger.Warn("could not stop a rank", "model", g.m.Name, "rank", i+1, "node", g.m.Nodes[i+1], "why", why, "err", err)
			continue
		}
		g.setRank(i, ms.State, ms.PID, why)
	}
}

func (g *Runner) setRank(i int, st status.State, pid int, reason string) {
	g.mu.Lock()
	g.ranks[i].State, g.ranks[i].PID, g.ranks[i].Reason = st, pid, reason
	g.mu.Unlock()
}

// call sends one admin request about the model to a node's gantry and
// decodes the model's status from the answer.
func (g *Runner) call(ctx context.Context, node, method, verb string, body []byte) (status.ModelStatus, error) {
	var ms status.ModelStatus
	p := g.peers.Get(node)
	if p == nil {
		return ms, fmt.Errorf("peer %s is not configured", node)
	}
	if p.State() == status.PeerDown && method == http.MethodPost && verb == "/rank" {
		return ms, fmt.Errorf("peer %s (%s) is down: %s", node, p.URL(), p.Err())
	}
	h := http.Header{"Content-Type": {"application/json"}}
	resp, err := p.Do(ctx, method, "/api/models/"+g.m.Name+verb, h, body)
	if err != nil {
		return ms, err
	}
	b, err := peers.ReadBody(resp, 1<<20)
	if err != nil {
		return ms, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return ms, fmt.Errorf("%s answered %d: %s", node, resp.StatusCode, e.Error.Message)
		}
		return ms, fmt.Errorf("%s answered %s: %.200s", node, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, &ms); err != nil {
		return ms, fmt.Errorf("%s's answer is not a model's status: %v", node, err)
	}
	return ms, nil
}

// watch starts the watch over the other ranks, once.
func (g *Runner) watch() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.watching != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.watching = cancel
	go g.watchLoop(ctx)
}

// watchLoop asks every other rank's gantry for its state while rank 0
// runs; a rank that failed, stopped or cannot be asked (its box down, the
// link cut) ends the group.
func (g *Runner) watchLoop(ctx context.Context) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st := g.Runner.State(); st != status.Ready && st != status.Starting {
			continue
		}
		for i := range g.ranks {
			if why := g.checkRank(ctx, i); why != "" {
				g.breakGroup(why)
				break
			}
		}
	}
}

// checkRank is why rank i+1 breaks the group ("" when it is fine).
func (g *Runner) checkRank(ctx context.Context, i int) string {
	rank, node := i+1, g.m.Nodes[i+1]
	if p := g.peers.Get(node); p == nil || !p.Up() {
		msg := "peer " + node + " is not configured"
		if p != nil {
			msg = fmt.Sprintf("peer %s (%s) is down: %s", node, p.URL(), p.Err())
		}
		g.setRank(i, status.Failed, 0, msg)
		return fmt.Sprintf("rank %d on %s is unreachable: %s", rank, node, msg)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ms, err := g.call(cctx, node, http.MethodGet, "/rank", nil)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ""
		}
		return "" // one failed question is not a dead rank; the peer's checks decide
	}
	g.setRank(i, ms.State, ms.PID, ms.Reason)
	if ms.State == status.Failed || ms.State == status.Stopped {
		why := ms.Reason
		if ms.Diagnosis != "" {
			why = ms.Diagnosis
		}
		return fmt.Sprintf("rank %d on %s is %s: %s", rank, node, ms.State, why)
	}
	return ""
}

// breakGroup ends rank 0 as a crashed engine, unless the group is being
// stopped on purpose.
func (g *Runner) breakGroup(why string) {
	g.mu.Lock()
	stopping := g.stopping
	g.mu.Unlock()
	if stopping {
		return
	}
	g.logger.Warn("a rank died: ending the group", "model", g.m.Name, "why", why)
	if k, ok := g.Runner.(killer); ok {
		k.Kill(why)
	}
}

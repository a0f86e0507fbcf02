package group

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/peers"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// follower is box b's gantry as the leader sees it: the rank endpoints.
type follower struct {
	mu     sync.Mutex
	state  status.State
	refuse string // answer POST .../rank with this 409 message
	calls  []string
	bodies []string
}

func (f *follower) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	f.bodies = append(f.bodies, string(b))
	switch {
	case r.URL.Path == "/v1/models":
		io.WriteString(w, `{"data":[]}`)
		return
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/rank"):
		if f.refuse != "" {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": f.refuse}})
			return
		}
		f.state = status.Starting
	case strings.HasSuffix(r.URL.Path, "/stop"):
		f.state = status.Stopped
	}
	json.NewEncoder(w).Encode(status.ModelStatus{Name: "duo", State: f.state, PID: 4242, Rank: 1})
}

func (f *follower) set(st status.State) {
	f.mu.Lock()
	f.state = st
	f.mu.Unlock()
}

func (f *follower) saw(call string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == call {
			return true
		}
	}
	return false
}

// rank0 is a fake rank 0: Start runs the Prepare it was built with.
type rank0 struct {
	opts     supervise.Options
	m        *config.Model
	mu       sync.Mutex
	state    status.State
	killed   chan string
	detached bool
}

func (r *rank0) Start(ctx context.Context) error {
	if err := r.opts.Prepare(ctx); err != nil {
		r.mu.Lock()
		r.state = status.Failed
		r.mu.Unlock()
		r.opts.OnEvent(supervise.Event{To: status.Failed, Reason: err.Error()})
		return err
	}
	r.mu.Lock()
	r.state = status.Ready
	r.mu.Unlock()
	return nil
}
func (r *rank0) Stop(context.Context) error {
	r.mu.Lock()
	r.state = status.Stopped
	r.mu.Unlock()
	r.opts.OnEvent(supervise.Event{To: status.Stopped})
	return nil
}
func (r *rank0) Close(context.Context) error { return nil }
func (r *rank0) Status() supervise.Status {
	return supervise.Status{State: r.State(), PID: 7}
}
func (r *rank0) State() status.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}
func (r *rank0) SetRestart(bool)             {}
func (r *rank0) Model() *config.Model        { return r.m }
func (r *rank0) Launch() engine.Launch       { return engine.Launch{} }
func (r *rank0) Log() *supervise.Log         { return nil }
func (r *rank0) Kill(reason string)          { r.killed <- reason }
func (r *rank0) Adopt(context.Context) error { return nil }
func (r *rank0) ContainerID() string         { return "c0ffee" }
func (r *rank0) Detach() {
	r.mu.Lock()
	r.detached = true
	r.mu.Unlock()
}

func newGroup(t *testing.T, f *follower) (*Runner, *rank0) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg, err := config.Parse("g.yaml", []byte(`
peers: {b: {url: "`+srv.URL+`", token: sk-b, health_interval: 100ms}}
models:
  duo: {engine: sim, memory: 1GiB, nodes: [local, b], dist_init_addr: "10.0.0.1:29500"}
`))
	if err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{}, 1)
	ps := peers.New(cfg, func(ev status.Event) {
		if ev.To == status.PeerUp {
			select {
			case up <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(ps.Close)
	<-up
	var r0 *rank0
	inner := func(sp sched.RunnerSpec) (sched.Runner, error) {
		r0 = &rank0{opts: sp.Options, m: sp.Model, state: status.Stopped, killed: make(chan string, 4)}
		return r0, nil
	}
	r, err := Wrap(sched.RunnerSpec{Config: cfg, Model: cfg.Models["duo"]}, ps, nil, inner, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := r.(*Runner)
	t.Cleanup(func() { g.Close(context.Background()) })
	return g, r0
}

func TestTheOtherRanksStartFirstAndAreWatched(t *testing.T) {
	f := &follower{state: status.Stopped}
	g, r0 := newGroup(t, f)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.saw("POST /api/models/duo/rank") {
		t.Fatalf("the follower was not asked to start its rank: %v", f.calls)
	}
	if body := f.bodies[len(f.bodies)-1]; !strings.Contains(body, `"nnodes":2`) || !strings.Contains(body, `"dist_init_addr":"10.0.0.1:29500"`) {
		t.Errorf("the rank request: %s", body)
	}
	rs := g.Ranks()
	if len(rs) != 2 || rs[0].Node != "local" || rs[1].Node != "b" || rs[1].PID != 4242 {
		t.Errorf("ranks %+v", rs)
	}
	// Rank 1 dies: the watch ends rank 0 as a crash.
	f.set(status.Failed)
	select {
	case why := <-r0.killed:
		if !strings.Contains(why, "rank 1 on b is failed") {
			t.Errorf("killed because %q", why)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("rank 0 outlived rank 1")
	}
}

func TestStopStopsEveryRank(t *testing.T) {
	f := &follower{state: status.Stopped}
	g, _ := newGroup(t, f)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.saw("POST /api/models/duo/stop") {
		t.Errorf("rank 1 was not stopped: %v", f.calls)
	}
}

func TestARankThatCannotStartFailsTheStart(t *testing.T) {
	f := &follower{state: status.Stopped, refuse: "the leader's group of duo (2 nodes, rank 0 at 10.0.0.1:29500) is not this box's"}
	g, _ := newGroup(t, f)
	err := g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "rank 1 on b could not start: b answered 409: the leader's group of duo") {
		t.Fatalf("start: %v", err)
	}
	if rs := g.Ranks(); rs[1].State != status.Failed {
		t.Errorf("rank 1 shows %s", rs[1].State)
	}
}

// The leader's runner forwards rank 0's container and its detach: the
// sweep of leftover containers after a restart keeps an adopted rank 0's
// container, and a detach (SIGUSR2) leaves the whole group running.
func TestRankZerosContainerAndDetachAreTheGroups(t *testing.T) {
	f := &follower{state: status.Stopped}
	g, r0 := newGroup(t, f)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var runner sched.Runner = g
	c, ok := runner.(sched.ContainerHolder)
	if !ok || c.ContainerID() != "c0ffee" {
		t.Fatalf("the group's container is not rank 0's (holder %v)", ok)
	}
	d, ok := runner.(sched.Detacher)
	if !ok {
		t.Fatal("the group cannot detach")
	}
	d.Detach()
	r0.mu.Lock()
	detached := r0.detached
	r0.mu.Unlock()
	if !detached {
		t.Error("rank 0 was not detached")
	}
	if f.saw("POST /api/models/duo/stop") {
		t.Errorf("a detach stopped rank 1: %v", f.calls)
	}
}

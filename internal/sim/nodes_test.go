package sim

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rank runs one rank of a two-node sim group and returns its base URL and
// the channel of its end.
func rank(t *testing.T, r int, dist string, out io.Writer) (string, context.CancelFunc, chan error) {
	t.Helper()
	o := Options{Port: freePort(t), Host: "127.0.0.1", Model: "duo", Flavor: "sglang", Tokens: 4, Dims: 8,
		LoadTime: 50 * time.Millisecond, NNodes: 2, NodeRank: r, DistInitAddr: dist}
	ctx, cancel := context.WithCancel(context.Background())
	done, fin := make(chan error, 1), make(chan struct{})
	go func() { done <- Run(ctx, o, out); close(fin) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-fin:
		case <-time.After(10 * time.Second):
			t.Error("a rank did not stop")
		}
	})
	return "http://127.0.0.1:" + strconv.Itoa(o.Port), cancel, done
}

// lines is a log the test waits on.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
	ch chan struct{}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	select {
	case l.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lines) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		has := strings.Contains(l.b.String(), s)
		l.mu.Unlock()
		if has {
			return
		}
		select {
		case <-l.ch:
		case <-timeout:
			t.Fatalf("never logged %q", s)
		}
	}
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if p := get(url); p.status == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never answered %d (last: %+v)", url, want, get(url))
}

func TestRankZeroWaitsForEveryRankAndADeadRankBreaksTheGroup(t *testing.T) {
	dist := "127.0.0.1:" + strconv.Itoa(freePort(t))
	log0 := &lines{ch: make(chan struct{}, 1)}
	base0, _, done0 := rank(t, 0, dist, log0)
	// Alone, rank 0 does not load: it waits, and its port stays shut.
	log0.waitFor(t, "waiting for 1 more rank(s)")
	if p := get(base0 + "/health"); !p.refused {
		t.Fatalf("rank 0 answers without rank 1: %+v", p)
	}
	base1, stop1, done1 := rank(t, 1, dist, io.Discard)
	waitStatus(t, base0+"/health", 200)
	waitStatus(t, base1+"/health", 200)
	if p := get(base1 + "/v1/models"); p.status != 404 || !strings.Contains(p.body, "Not Found") {
		t.Errorf("rank 1 serves the API: %+v", p)
	}
	resp, err := http.Post(base0+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"duo","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("rank 0 does not serve: %v %v", resp, err)
	}
	resp.Body.Close()
	stop1()
	<-done1
	select {
	case err := <-done0:
		if err == nil || !strings.Contains(err.Error(), "the group is broken") {
			t.Errorf("rank 0 ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rank 0 outlived rank 1")
	}
}

func TestRankOneEndsWithRankZero(t *testing.T) {
	dist := "127.0.0.1:" + strconv.Itoa(freePort(t))
	base1, _, done1 := rank(t, 1, dist, io.Discard) // first: it waits for rank 0
	_, stop0, _ := rank(t, 0, dist, io.Discard)
	waitStatus(t, base1+"/health", 200)
	stop0()
	select {
	case err := <-done1:
		if err == nil || !strings.Contains(err.Error(), "rank 0 closed the connection") {
			t.Errorf("rank 1 ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rank 1 outlived rank 0")
	}
}

func TestNodeFlagsAreChecked(t *testing.T) {
	for _, o := range []Options{
		{NNodes: 2, NodeRank: 2, DistInitAddr: "h:1"},
		{NNodes: 2},
		{NNodes: 2, DistInitAddr: "nohost"},
		{NNodes: -1},
	} {
		o.Flavor, o.Tokens, o.Dims = "sglang", 1, 1
		if err := o.Validate(); err == nil {
			t.Errorf("%+v passed", o)
		}
	}
}

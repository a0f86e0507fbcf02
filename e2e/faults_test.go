package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// The fault suite: real gantry, real sim engines, each fault injected
// while clients send requests. Every request ends as completed, refused
// with a documented error, or lost; lost must be 0. The table goes to
// RELIABILITY.md when GANTRY_RELIABILITY_OUT names it.

const faultConfig = `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
defaults: {stop_timeout: 5s}
slots:
  private: {port: PORTSLOT, min_residency: 200ms}
models:
  steady: {engine: sim, memory: 2GiB, mode: always-on, args: [--itl, 2ms, --tokens, "8", --model, e2e-fault-steady]}
  flaky: {engine: sim, memory: 2GiB, mode: always-on, health_interval: 200ms, health_failures: 2, args: [--itl, 5ms, --tokens, "8", --fail-health-after, "10", --model, e2e-fault-flaky]}
  crashy: {engine: sim, memory: 2GiB, args: [--itl, 5ms, --tokens, "32", --crash-after, "25", --model, e2e-fault-crashy]}
  loop: {engine: sim, memory: 1GiB, mode: always-on, args: [--crash-after, "1", --model, e2e-fault-loop]}
  hang: {engine: sim, memory: 1GiB, start_timeout: 2s, env: {GANTRY_TEST_MARKER: HANGMARKER}, args: [--hang-load, --spawn-child, --ignore-sigterm, --model, e2e-fault-hang]}
  idle: {engine: sim, memory: 1GiB, idle_timeout: 300ms, args: [--load-time, 100ms, --model, e2e-fault-idle]}
  qa: {engine: sim, memory: 4GiB, slot: private, args: [--itl, 2ms, --tokens, "8", --load-time, 100ms]}
  qb: {engine: sim, memory: 4GiB, slot: private, args: [--itl, 2ms, --tokens, "8", --load-time, 100ms]}
  slow: {engine: sim, memory: 1GiB, queue_limit: 50, args: [--load-time, 3s]}
  gated: {engine: sim, memory: 1GiB, queue_limit: 50, start_timeout: 5m, args: [--load-until-signal, --model, e2e-fault-gated]}
`

func TestFaultSuite(t *testing.T) {
	// The hung engine's child (`gantry sim --idle-child`) has no marker in
	// its command line; it inherits its parent's environment.
	hangMarker := fmt.Sprintf("e2e-fault-hang-%d", time.Now().UnixNano())
	d := startDaemon(t, strings.ReplaceAll(faultConfig, "HANGMARKER", hangMarker))
	d.waitState("steady", "ready", 20*time.Second)
	d.waitState("flaky", "ready", 20*time.Second)

	t.Run("engine stops answering health checks", func(t *testing.T) {
		ta := newTally("engine stops answering health checks (killed and restarted twice)")
		if n := ta.loadUntilStarts(d, "flaky", 3, 20*time.Second); n < 3 {
			t.Errorf("flaky was not restarted twice (starts %d)", n)
		}
		record(t, ta)
	})

	t.Run("engine crashes mid-stream", func(t *testing.T) {
		ta := newTally("engine crashes mid-stream (on-demand; the next request starts it again)")
		if n := ta.loadUntilStarts(d, "crashy", 3, 20*time.Second); n < 3 {
			t.Errorf("crashy did not crash and start again twice (starts %d)", n)
		}
		if ta.count("refused: stream ended with an error event") == 0 {
			t.Errorf("no stream was cut by a crash: %v", ta.why)
		}
		record(t, ta)
	})

	t.Run("always-on crash loop backs off", func(t *testing.T) {
		ta := newTally("always-on engine crash-loops (backs off, shows failed with the reason)")
		// loop crashes at its first request: three restarts come after
		// backoffs of 1s, 2s and 4s, so they take at least 7 s — a loop
		// that spins restarts three times in a fraction of that.
		s0 := d.starts("loop")
		began := time.Now()
		stop := make(chan struct{})
		wg := ta.load(d.url, 2, false, func() string { return "loop" }, stop)
		backoff := ""
		for d.starts("loop") < s0+3 {
			if time.Since(began) > time.Minute {
				close(stop)
				wg.Wait()
				t.Fatalf("loop was restarted %d times in a minute, want 3: %+v", d.starts("loop")-s0, d.status().Model("loop"))
			}
			if m := d.status().Model("loop"); m.State == status.Failed && strings.Contains(m.Reason, "restarting in") {
				backoff = m.Reason
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(began)
		close(stop)
		wg.Wait()
		if took < 7*time.Second {
			t.Errorf("the crash loop spins: 3 restarts in %s, want at least 7 s of backoff", took)
		}
		if backoff == "" {
			t.Errorf("status never showed failed with the backoff (restarting in …)")
		}
		t.Logf("3 restarts in %s; status said %q", took.Round(time.Millisecond), backoff)
		record(t, ta)
	})

	t.Run("start exceeds start_timeout", func(t *testing.T) {
		ta := newTally("start exceeds start_timeout (killed with its group, 503 with the reason)")
		for i := 0; i < 3; i++ {
			done := make(chan struct{})
			go func() { defer close(done); ta.do(context.Background(), d.url, "hang", false) }()
			// The fault: the engine and its SIGTERM-ignoring child run
			// (seen while the start hangs), and none of them outlives it.
			group := waitProcsWithEnv(t, "GANTRY_TEST_MARKER="+hangMarker, 2, 10*time.Second)
			<-done
			if err := noneLeft("GANTRY_TEST_MARKER="+hangMarker, group); err != nil {
				t.Errorf("start %d of the hung engine: %v", i+1, err)
			}
		}
		if n := ta.said("model_unavailable", "start_timeout"); n != 3 {
			t.Errorf("%d of 3 requests refused naming start_timeout; the refusals said:\n%s", n, ta.wordsOf())
		}
		record(t, ta)
	})

	t.Run("requests while idling out", func(t *testing.T) {
		ta := newTally("requests arrive while the model idles out (served: the model comes back)")
		for i := 0; i < 30; i++ {
			ta.do(context.Background(), d.url, "idle", false)
			time.Sleep(time.Duration(250+rand.IntN(150)) * time.Millisecond)
		}
		if d.starts("idle") < 2 {
			t.Errorf("idle never idled out (starts %d)", d.starts("idle"))
		}
		if ta.completed.Load() != ta.sent.Load() {
			t.Errorf("%d of %d requests served: %v", ta.completed.Load(), ta.sent.Load(), ta.why)
		}
		record(t, ta)
	})

	t.Run("clients give up while loading", func(t *testing.T) {
		ta := newTally("clients disconnect while the model loads (the load goes on for the next)")
		for i := 0; i < 20; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			ta.sent.Add(1)
			req, _ := http.NewRequestWithContext(ctx, "POST", d.url+"/v1/chat/completions", strings.NewReader(`{"model":"slow"}`))
			resp, err := faultClient.Do(req)
			if err != nil {
				ta.refused.Add(1)
				ta.note("refused", "the client gave up (its own time-out)")
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ta.completed.Add(1)
				} else {
					ta.lost.Add(1)
					ta.note("lost", fmt.Sprint(resp.StatusCode))
				}
			}
			cancel()
		}
		before := ta.completed.Load()
		ta.do(context.Background(), d.url, "slow", false) // the load finished for this one
		if ta.completed.Load() != before+1 {
			t.Errorf("the request after the give-ups was not served: %v", ta.why)
		}
		if ta.count("refused: the client gave up (its own time-out)") == 0 {
			t.Errorf("no client gave up while slow loaded (the fault did not happen): %v", ta.why)
		}
		// The load went on (one start), and no waiter was left behind: not
		// of slow, nor of any other model.
		if m := d.status().Model("slow"); m.Starts != 1 || m.Queued != 0 || m.Inflight != 0 {
			t.Errorf("slow after the give-ups: starts %d (want 1: the load went on), queued %d, in flight %d", m.Starts, m.Queued, m.Inflight)
		}
		for _, m := range d.status().Models {
			if m.Queued != 0 {
				t.Errorf("%s has %d waiters left behind", m.Name, m.Queued)
			}
		}
		record(t, ta)
	})

	t.Run("slowloris", func(t *testing.T) {
		ta := newTally("200 slowloris connections (cut by the header time-out; others not slowed)")
		var conns []net.Conn
		addr := strings.TrimPrefix(d.url, "http://")
		for i := 0; i < 200; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"))
			conns = append(conns, c)
		}
		began := time.Now()
		stop := make(chan struct{})
		wg := ta.load(d.url, 8, false, func() string { return "steady" }, stop)
		time.Sleep(2 * time.Second)
		close(stop)
		wg.Wait()
		if per := time.Since(began) / time.Duration(max(ta.completed.Load(), 1)); per > 50*time.Millisecond {
			t.Errorf("others were slowed: %s per request", per)
		}
		// The server cuts them after its 10 s header time-out.
		cut := 0
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(12 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err != nil {
				cut++
			}
			c.Close()
		}
		if cut != 200 {
			t.Errorf("%d of 200 slowloris connections cut", cut)
		}
		record(t, ta)
	})

	t.Run("10000 queued requests", func(t *testing.T) {
		ta := newTally("10 000 requests at once for a loading model (queue cap → 429)")
		// The model loads until every request has arrived (it ends at
		// SIGUSR1), so the counts do not depend on this machine's speed.
		var wg sync.WaitGroup
		for i := 0; i < 10000; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ta.do(context.Background(), d.url, "gated", false)
			}()
		}
		// 50 wait for the load; every other one is refused at once.
		for deadline := time.Now().Add(2 * time.Minute); ta.refused.Load() < 10000-50; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d refused of 10000 with a queue of 50 (want 9950): the cap does not hold", ta.refused.Load())
			}
		}
		rss := float64(rssOf(t, d.cmd.Process.Pid)) / (1 << 20)
		t.Logf("gantry RSS with 10 000 requests in: %.0f MB", rss)
		if rss > 300 {
			t.Errorf("gantry RSS %.0f MB", rss)
		}
		pid := d.pid("gated")
		if pid == 0 {
			t.Fatal("the gated model has no process while loading")
		}
		syscall.Kill(pid, syscall.SIGUSR1) // the load is over
		wg.Wait()
		if ta.completed.Load() != 50 || ta.refused.Load() != 9950 {
			t.Errorf("completed %d, refused %d; want the 50 that waited served and 9950 refused", ta.completed.Load(), ta.refused.Load())
		}
		record(t, ta)
	})

	t.Run("bad input", func(t *testing.T) {
		ta := newTally("bad input: not JSON, no model, huge body, unknown or path-like model names")
		bodies := []string{`not json`, `{"messages":[]}`, `{"model":"../../etc/passwd"}`, `{"model":"a b; rm -rf /"}`,
			`{"model":"x` + strings.Repeat("a", 40<<20) + `"}`, `{"model":"steady","x":` + strings.Repeat("[", 5000) + `}`}
		for _, b := range bodies {
			ta.sent.Add(1)
			resp, err := faultClient.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(b))
			if err != nil {
				ta.lost.Add(1)
				ta.note("lost", err.Error())
				continue
			}
			var e struct{ Error struct{ Code string } }
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode >= 400 && resp.StatusCode < 500 && documented[e.Error.Code] {
				ta.refused.Add(1)
				ta.note("refused", fmt.Sprintf("%d %s", resp.StatusCode, e.Error.Code))
			} else {
				ta.lost.Add(1)
				ta.note("lost", fmt.Sprint(resp.StatusCode, e.Error.Code))
			}
		}
		for _, p := range []string{"/api/logs/..%2f..%2fetc%2fpasswd", "/api/logs/../../etc/passwd", "/api/models/nope/start"} {
			resp, err := http.Get(d.url + p)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), "root:") {
					t.Errorf("%s leaked a file", p)
				}
			}
		}
		record(t, ta)
	})

	t.Run("slot alternation", func(t *testing.T) {
		span := map[bool]time.Duration{true: 5 * time.Second, false: 30 * time.Second}[testing.Short()]
		ta := newTally(fmt.Sprintf("200 clients alternating between two models on one slot for %s", span))
		stop := make(chan struct{})
		var k atomic.Int64
		wg := ta.load(d.url, 200, true, func() string {
			if k.Add(1)%2 == 0 {
				return "qa"
			}
			return "qb"
		}, stop)
		time.Sleep(span)
		close(stop)
		wg.Wait()
		if ta.completed.Load() == 0 {
			t.Error("nothing completed: deadlock?")
		}
		// The fault is the alternation: the slot switched between them.
		if qa, qb := d.starts("qa"), d.starts("qb"); qa < 2 || qb < 2 {
			t.Errorf("the slot did not alternate: qa started %d times, qb %d", qa, qb)
		}
		record(t, ta)
	})

	t.Run("engines killed during load", func(t *testing.T) {
		ta := newTally("kill -9 of random engines during load")
		stop := make(chan struct{})
		models := []string{"steady", "qa", "crashy"}
		wg := ta.load(d.url, 16, true, func() string { return models[rand.IntN(len(models))] }, stop)
		// Each round kills a random model that runs now, and sees it die;
		// then each killed model must start again (gantry saw the kill).
		startsAt := map[string]int{} // a killed model's starts when it was last killed
		for i := 0; i < 6; i++ {
			time.Sleep(700 * time.Millisecond)
			var pid int
			var m string
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					close(stop)
					wg.Wait()
					t.Fatalf("round %d: none of %v runs to be killed: %+v", i+1, models, d.status().Models)
				}
				m = models[rand.IntN(len(models))]
				if pid = d.pid(m); pid == 0 {
					continue
				}
				n := d.starts(m)
				// ESRCH: it went meanwhile (crashy crashes on its own); pick again.
				if err := syscall.Kill(-pid, syscall.SIGKILL); err == nil {
					startsAt[m] = n
					break
				} else if err != syscall.ESRCH {
					t.Fatalf("kill -9 of %s's group %d: %v", m, pid, err)
				}
			}
			for deadline := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s (pid %d) still alive 10 s after kill -9", m, pid)
				}
			}
		}
		t.Logf("killed (starts before the last kill): %v", startsAt)
		for m, n := range startsAt {
			// an always-on model killed in a row waits out its backoff
			for deadline := time.Now().Add(90 * time.Second); d.starts(m) <= n; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("%s was not started again after its kill: %+v", m, d.status().Model(m))
					break
				}
			}
		}
		close(stop)
		wg.Wait()
		record(t, ta)
	})

	t.Run("gantry killed and restarted during load", func(t *testing.T) {
		ta := newTally("kill -9 of gantry during load, then restart (engines adopted)")
		ta.allowConnErrors = true
		d.waitState("steady", "ready", 20*time.Second)
		steadyPID := d.pid("steady")
		stop := make(chan struct{})
		wg := ta.load(d.url, 8, true, func() string { return "steady" }, stop)
		time.Sleep(time.Second)
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
		d2 := d.again()
		time.Sleep(2 * time.Second)
		close(stop)
		wg.Wait()
		if d2.pid("steady") != steadyPID {
			t.Errorf("steady was started again (pid %d → %d) instead of adopted: %+v", steadyPID, d2.pid("steady"), d2.status().Model("steady"))
		}
		// After the restart, requests complete again.
		d2.waitState("steady", "ready", 20*time.Second)
		before := ta.completed.Load()
		for i := 0; i < 5; i++ {
			ta.do(context.Background(), d.url, "steady", true)
		}
		if ta.completed.Load()-before != 5 {
			t.Errorf("after the restart only %d of 5 completed: %v", ta.completed.Load()-before, ta.why)
		}
		record(t, ta)
	})
}

func (d *daemon) starts(model string) int {
	for _, m := range d.status().Models {
		if m.Name == model {
			return m.Starts
		}
	}
	return 0
}

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"sort"
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

// documented are the error codes README.md lists for the gateway.
var documented = map[string]bool{
	"invalid_json": true, "model_missing": true, "model_not_found": true, "request_too_large": true,
	"queue_full": true, "upstream_error": true, "insufficient_memory": true, "model_unavailable": true,
	"slot_switching": true, "start_timeout": true, "shutting_down": true, "invalid_api_key": true, "missing_api_key": true,
	"peer_down": true, "peer_unreachable": true,
}

type tally struct {
	name                           string
	sent, completed, refused, lost atomic.Int64
	mu                             sync.Mutex
	why                            map[string]int
	words                          map[string]int  // what the refusals said: "code: message", counted
	failed                         func() bool     // the row's test failed (set by record)
	abort                          chan struct{}   // closed when the test gave up: the clients stop
	abortOnce                      sync.Once
	allowConnErrors                bool            // gantry itself is killed in this row
	key                            string          // the gateway's key, when it has one
	ttft                           []time.Duration // streams' times to the first event
}

func newTally(name string) *tally {
	return &tally{name: name, why: map[string]int{}, words: map[string]int{}, abort: make(chan struct{})}
}

// stopClients stops every client of ta's load (a test that gives up).
func (ta *tally) stopClients() { ta.abortOnce.Do(func() { close(ta.abort) }) }

// waitFor waits until the count c of ta reaches n; when it does not within
// the time, it stops ta's clients and fails the test (a row whose fault or
// recovery did not happen proves nothing).
func (ta *tally) waitFor(t *testing.T, what string, c *atomic.Int64, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for c.Load() < n {
		if time.Now().After(deadline) {
			ta.stopClients()
			t.Fatalf("%s: %d requests %s within %s, want %d; outcomes %v; refusals said:\n%s", ta.name, c.Load(), what, within, n, ta.why, ta.wordsOf())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (t *tally) note(kind, why string) {
	t.mu.Lock()
	t.why[kind+": "+why]++
	t.mu.Unlock()
}

// count is how many requests ended as kind ("refused: " or "lost: "
// and the reason, as the row's table says them).
func (t *tally) count(kindWhy string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.why[kindWhy]
}

// refusedWith files a documented refusal and its words.
func (t *tally) refusedWith(why, code, message string) {
	t.refused.Add(1)
	t.note("refused", why)
	message = addrs.ReplaceAllString(stamps.ReplaceAllString(message, "TIME"), "ADDR")
	t.mu.Lock()
	if k := code + ": " + message; t.words[k] > 0 || len(t.words) < 500 {
		t.words[k]++
	} else {
		t.words[code+": (more messages)"]++
	}
	t.mu.Unlock()
}

// addrs and stamps vary from one refusal to the next (a client port, a log
// line's time): the words are counted without them.
var (
	addrs  = regexp.MustCompile(`\b(\d{1,3}\.){3}\d{1,3}:\d+`)
	stamps = regexp.MustCompile(`\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(\.\d+)?|unix_ns=\d+`)
)

// said counts the refusals whose code and message contain every one of
// subs: a row proves its fault by what the refusals say.
func (t *tally) said(subs ...string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
next:
	for k, c := range t.words {
		for _, s := range subs {
			if !strings.Contains(k, s) {
				continue next
			}
		}
		n += c
	}
	return n
}

// wordsOf is what the refusals said, for failure messages.
func (t *tally) wordsOf() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ks []string
	for k, n := range t.words {
		ks = append(ks, fmt.Sprintf("%dx %.300s", n, k))
	}
	sort.Strings(ks)
	return strings.Join(ks, "\n")
}

var faultClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}}

// do sends one request and files its outcome. A stream completes only with
// its [DONE]; one cut with an error event is refused (documented); one cut
// silently is lost.
func (t *tally) do(ctx context.Context, url, model string, stream bool) {
	t.sent.Add(1)
	began := time.Now()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"x"}],"stream":%v}`, model, stream)
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if t.key != "" {
		req.Header.Set("Authorization", "Bearer "+t.key)
	}
	resp, err := faultClient.Do(req)
	if err != nil {
		if t.allowConnErrors {
			t.refused.Add(1)
			t.note("refused", "connection error while gantry was down")
			return
		}
		t.lost.Add(1)
		t.note("lost", err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var e struct {
			Error struct{ Code, Message string }
		}
		b, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(b, &e) == nil && documented[e.Error.Code] {
			t.refusedWith(fmt.Sprintf("%d %s", resp.StatusCode, e.Error.Code), e.Error.Code, e.Error.Message)
			return
		}
		t.lost.Add(1)
		t.note("lost", fmt.Sprintf("%d %.80s", resp.StatusCode, b))
		return
	}
	if !stream {
		if _, err := io.ReadAll(resp.Body); err != nil {
			t.classifyCut(err)
			return
		}
		t.completed.Add(1)
		return
	}
	sc := bufio.NewScanner(resp.Body)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first && strings.HasPrefix(line, "data: ") {
			first = false
			t.mu.Lock()
			t.ttft = append(t.ttft, time.Since(began))
			t.mu.Unlock()
		}
		if line == "data: [DONE]" {
			t.completed.Add(1)
			return
		}
		if strings.HasPrefix(line, `data: {"error"`) {
			var e struct {
				Error struct{ Code, Message string }
			}
			json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e)
			t.refusedWith("stream ended with an error event", e.Error.Code, e.Error.Message)
			return
		}
	}
	t.classifyCut(sc.Err())
}

func (t *tally) classifyCut(err error) {
	if t.allowConnErrors {
		t.refused.Add(1)
		t.note("refused", "connection cut when gantry was killed")
		return
	}
	t.lost.Add(1)
	t.note("lost", fmt.Sprintf("response cut: %v", err))
}

// load runs n clients against the gateway until stop closes, each asking
// for pick() models.
func (t *tally) load(url string, n int, stream bool, pick func() string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-t.abort:
					return
				default:
				}
				before := t.refused.Load()
				t.do(context.Background(), url, pick(), stream)
				if t.refused.Load() != before {
					time.Sleep(20 * time.Millisecond) // a client backs off after a refusal
				}
			}
		}()
	}
	return &wg
}

var (
	rowsMu sync.Mutex
	rows   []*tally
)

// loadUntilStarts streams from model with 8 clients until gantry has
// started it want times (polling its status), or within passes; it
// returns the starts.
func (t *tally) loadUntilStarts(d *daemon, model string, want int, within time.Duration) int {
	stop := make(chan struct{})
	wg := t.load(d.url, 8, true, func() string { return model }, stop)
	deadline := time.Now().Add(within)
	for d.starts(model) < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	return d.starts(model)
}

// record files ta as a row of RELIABILITY.md, whose verdict is its test's
// (read when the report is written: checks after record count too), and
// checks that no request was lost.
func record(t *testing.T, ta *tally) {
	t.Helper()
	ta.failed = t.Failed
	rowsMu.Lock()
	rows = append(rows, ta)
	rowsMu.Unlock()
	t.Logf("%s: sent %d, completed %d, refused %d, lost %d %v; the refusals said:\n%s", ta.name, ta.sent.Load(), ta.completed.Load(), ta.refused.Load(), ta.lost.Load(), ta.why, ta.wordsOf())
	if ta.lost.Load() != 0 {
		t.Errorf("%s: %d requests lost: %v", ta.name, ta.lost.Load(), ta.why)
	}
	if ta.sent.Load() == 0 {
		t.Errorf("%s: no requests sent", ta.name)
	}
}

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
			for deadline := time.Now().Add(20 * time.Second); pid == 0; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					close(stop)
					wg.Wait()
					t.Fatalf("round %d: none of %v runs to be killed: %+v", i+1, models, d.status().Models)
				}
				m = models[rand.IntN(len(models))]
				pid = d.pid(m)
			}
			startsAt[m] = d.starts(m)
			if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill -9 of %s's group %d: %v", m, pid, err)
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

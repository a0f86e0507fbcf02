package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The fault suite's bookkeeping: a tally of one row's requests (completed,
// refused with a documented error and its words, or lost), the clients
// that load a model while a fault happens, and waits that fail the test
// when what they wait for does not come.

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
	words                          map[string]int // what the refusals said: "code: message", counted
	failed                         func() bool    // the row's test failed (set by record)
	abort                          chan struct{}  // closed when the test gave up: the clients stop
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

// waitCompleted waits until n requests of ta completed; it fails the test
// when they did not within the time.
func waitCompleted(t *testing.T, ta *tally, n int64, within time.Duration) {
	t.Helper()
	ta.waitFor(t, "completed", &ta.completed, n, within)
}

// waitRefused waits until n requests of ta were refused; it fails the test
// when they were not within the time.
func waitRefused(t *testing.T, ta *tally, n int64, within time.Duration) {
	t.Helper()
	ta.waitFor(t, "refused", &ta.refused, n, within)
}

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gantryhq/gantry/internal/status"
)

const boxA = `listen: LISTEN
root: ROOT
port_range: 31000-31499
auth: {api_keys: [sk-a]}
memory: {total: 48GiB, reserve: 8GiB}
peers:
  b: {url: "PEERURL", token: sk-b, health_interval: 300ms, connect_timeout: 1s}
models:
  alpha: {engine: sim, memory: 4GiB, args: [--load-time, 200ms, --itl, 5ms]}
  both: {engine: sim, memory: 4GiB, prefer: b, args: [--load-time, 200ms, --itl, 5ms, --tokens, 40]}
  duo: {engine: sim, memory: 4GiB, mode: always-on, nodes: [local, b], dist_init_addr: "DISTADDR",
        args: [--flavor, sglang, --load-time, 300ms, --itl, 5ms, --tokens, 20]}
`

const boxB = `listen: LISTEN
root: ROOT
port_range: 31500-31999
auth: {api_keys: [sk-b]}
memory: {total: 48GiB, reserve: 8GiB}
peers:
  a: {url: "PEERURL", token: sk-a, health_interval: 300ms, connect_timeout: 1s}
models:
  beta: {engine: sim, memory: 4GiB, aliases: [bee], args: [--load-time, 1500ms, --itl, 10ms, --tokens, 60]}
  both: {engine: sim, memory: 4GiB, args: [--load-time, 200ms, --itl, 5ms, --tokens, 40]}
  duo: {engine: sim, memory: 4GiB, nodes: [a, local], dist_init_addr: "DISTADDR",
        args: [--flavor, sglang, --load-time, 300ms, --itl, 5ms, --tokens, 20]}
`

// ask sends a chat request with key and returns the answer.
func ask(t *testing.T, url, key, model string, stream bool, header ...string) (*http.Response, string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":%v}`, model, stream)
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", model, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// peerState waits until d sees peer in state.
func peerState(t *testing.T, d *daemon, key, peer, state string, within time.Duration) status.PeerStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	var last status.PeerStatus
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", d.url+"/api/status?peers=1", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var st status.Status
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			for _, p := range st.Peers {
				if p.Name == peer {
					last = p
					if p.State == state {
						return p
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("peer %s not %s within %s: %+v", peer, state, within, last)
	return last
}

// streamFirst starts a stream and returns its reader once the first event
// came.
func streamFirst(t *testing.T, url, key, model string) (*bufio.Scanner, func()) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":true}`, model)
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Gantry-Peer") != "b" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream of %s: %d via %q: %s", model, resp.StatusCode, resp.Header.Get("X-Gantry-Peer"), b)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: {") {
			return sc, func() { resp.Body.Close() }
		}
	}
	t.Fatalf("stream of %s ended before its first event", model)
	return nil, nil
}

// streamEnd reads a stream to its end and returns its last data line.
func streamEnd(sc *bufio.Scanner) string {
	last := ""
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			last = sc.Text()
		}
	}
	return last
}

func TestFaultPeers(t *testing.T) {
	boxes := makeTwoBoxes(t)
	a, b := boxes.startBoth()

	t.Run("each lists the other's models", func(t *testing.T) {
		req, _ := http.NewRequest("GET", a.url+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer sk-a")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var l struct {
			Data []struct {
				ID     string
				Gantry struct{ Peer, AliasOf string } `json:"gantry"`
			}
		}
		json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		where := map[string]string{}
		for _, m := range l.Data {
			where[m.ID] = m.Gantry.Peer
		}
		if p, ok := where["beta"]; !ok || p != "b" || where["bee"] != "b" || where["alpha"] != "" || where["both"] != "" {
			t.Errorf("A's /v1/models: %v", where)
		}
	})

	t.Run("a cold start on the peer is waited for, and streams relay event by event", func(t *testing.T) {
		began := time.Now()
		resp, body := ask(t, a.url, "sk-a", "bee", false)
		if resp.StatusCode != 200 || resp.Header.Get("X-Gantry-Peer") != "b" || resp.Header.Get("X-Gantry-Served-By") != "beta" {
			t.Fatalf("bee through A: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		if took := time.Since(began); took < 1500*time.Millisecond {
			t.Errorf("the cold start on B took %s, less than its load time", took)
		}
		resp, body = ask(t, a.url, "sk-a", "beta", true)
		if n := strings.Count(body, "data: {"); resp.StatusCode != 200 || n < 60 || !strings.HasSuffix(strings.TrimSpace(body), "data: [DONE]") {
			t.Errorf("stream through A: %d, %d events: %.300s", resp.StatusCode, n, body)
		}
	})

	t.Run("what a peer sends is never relayed again", func(t *testing.T) {
		resp, body := ask(t, a.url, "sk-a", "beta", false, "X-Gantry-Via", "10.0.0.9:4000")
		if resp.StatusCode != 404 || !strings.Contains(body, "model_not_found") {
			t.Errorf("a relayed request for a peer's model: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("a model on both boxes starts on the preferred one", func(t *testing.T) {
		resp, body := ask(t, a.url, "sk-a", "both", false)
		if resp.StatusCode != 200 || resp.Header.Get("X-Gantry-Peer") != "b" {
			t.Errorf("both through A: %d peer %q %s", resp.StatusCode, resp.Header.Get("X-Gantry-Peer"), body)
		}
		out, code := a.gantry("ps")
		if code != 0 || !strings.Contains(out, "peer b (") || !strings.Contains(out, "@b") || !strings.Contains(out, "beta") {
			t.Errorf("gantry ps on A (exit %d):\n%s", code, out)
		}
	})

	t.Run("the dashboard shows the peer's models", func(t *testing.T) {
		ctx := browser(t)
		step(t, a, ctx, chromedp.Navigate(a.url+"/"))
		step(t, a, ctx, chromedp.WaitVisible(`#loginform`))
		step(t, a, ctx, chromedp.SendKeys(`#key`, "sk-a"))
		step(t, a, ctx, chromedp.Click(`#loginform button`))
		step(t, a, ctx, chromedp.WaitVisible(`tr[data-peer-model="beta"]`))
		text := step(t, a, ctx, chromedp.Text(`tr[data-peer-model="beta"]`))
		if !strings.Contains(text, "beta @b") || !strings.Contains(text, "ready") {
			t.Errorf("beta's row on A's dashboard: %q", text)
		}
	})

	t.Run("one model across both boxes", func(t *testing.T) {
		duoTests(t, boxes, a, b)
	})

	t.Run("the peer killed mid-stream, then back", func(t *testing.T) {
		sc, done := streamFirst(t, a.url, "sk-a", "beta")
		defer done()
		b.cmd.Process.Signal(syscall.SIGKILL)
		<-b.done
		if last := streamEnd(sc); !strings.Contains(last, `"error"`) || !strings.Contains(last, "peer b") {
			t.Errorf("the stream ended with %q, want an error event naming peer b", last)
		}
		peerState(t, a, "sk-a", "b", status.PeerDown, 10*time.Second)
		resp, body := ask(t, a.url, "sk-a", "beta", false)
		if resp.StatusCode != 503 || !strings.Contains(body, "peer_down") || !strings.Contains(body, "peer b") || resp.Header.Get("Retry-After") == "" {
			t.Errorf("beta with B down: %d %s", resp.StatusCode, body)
		}
		resp, body = ask(t, a.url, "sk-a", "both", false)
		if resp.StatusCode != 200 || resp.Header.Get("X-Gantry-Peer") != "" || resp.Header.Get("X-Gantry-Served-By") != "both" {
			t.Errorf("both with B down did not fail over to A: %d peer %q %s", resp.StatusCode, resp.Header.Get("X-Gantry-Peer"), body)
		}
		b = b.again()
		peerState(t, a, "sk-a", "b", status.PeerUp, 15*time.Second)
		if resp, body := ask(t, a.url, "sk-a", "beta", false); resp.StatusCode != 200 {
			t.Errorf("beta after B came back: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("the link cut mid-stream, then healed", func(t *testing.T) {
		sc, done := streamFirst(t, a.url, "sk-a", "beta")
		defer done()
		cutAt := time.Now()
		boxes.cut(b)
		healed := false
		defer func() {
			if !healed {
				boxes.heal(b)
			}
		}()
		if last := streamEnd(sc); !strings.Contains(last, `"error"`) || !strings.Contains(last, "peer b") {
			t.Errorf("the stream over the cut link ended with %q, want an error event naming peer b", last)
		}
		if took := time.Since(cutAt); took > 10*time.Second {
			t.Errorf("the stream over the cut link ended %s after the cut", took)
		}
		peerState(t, a, "sk-a", "b", status.PeerDown, 10*time.Second)
		resp, body := ask(t, a.url, "sk-a", "beta", false)
		if resp.StatusCode != 503 || !strings.Contains(body, "peer_down") {
			t.Errorf("beta over the cut link: %d %s", resp.StatusCode, body)
		}
		boxes.heal(b)
		healed = true
		peerState(t, a, "sk-a", "b", status.PeerUp, 15*time.Second)
		if resp, body := ask(t, a.url, "sk-a", "beta", true); resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
			t.Errorf("beta after the link healed: %d %.200s", resp.StatusCode, body)
		}
	})

	t.Run("lost = 0 while the peer dies and the link is cut", func(t *testing.T) {
		peerFault := func(name string, fault func(), repair func()) {
			ta := newTally(name)
			ta.key = "sk-a"
			ta.allowConnErrors = false
			stop := make(chan struct{})
			models := []string{"beta", "both"}
			var mu sync.Mutex
			i := 0
			wg := ta.load(a.url, 6, true, func() string {
				mu.Lock()
				defer mu.Unlock()
				i++
				return models[i%2]
			}, stop)
			waitCompleted(t, ta, 20, 20*time.Second)
			fault()
			peerState(t, a, "sk-a", "b", status.PeerDown, 10*time.Second)
			waitRefused(t, ta, 10, 10*time.Second)
			if ta.said("peer_down", "peer b") == 0 {
				t.Errorf("%s: no refusal named the peer (peer_down, peer b); they said:\n%s", name, ta.wordsOf())
			}
			repair()
			peerState(t, a, "sk-a", "b", status.PeerUp, 15*time.Second)
			before := ta.completed.Load()
			waitCompleted(t, ta, before+20, 20*time.Second)
			close(stop)
			wg.Wait()
			record(t, ta)
		}
		peerFault("peer gantry killed (kill -9) under load, then restarted; models on both boxes fail over",
			func() { b.cmd.Process.Signal(syscall.SIGKILL); <-b.done },
			func() { b = b.again() })
		peerFault("link between the boxes cut under load, then healed ("+linkCut+")",
			func() { boxes.cut(b) }, func() { boxes.heal(b) })
	})
}

// modelOf is one model's status on d, asked with key.
func modelOf(t *testing.T, d *daemon, key, model string) status.ModelStatus {
	t.Helper()
	req, _ := http.NewRequest("GET", d.url+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st status.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Model(model)
}

// waitModel waits until model on d is in state (and, when pidNot is not
// 0, runs under another pid than that).
func waitModel(t *testing.T, d *daemon, key, model string, state status.State, pidNot int, within time.Duration) status.ModelStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	var ms status.ModelStatus
	for time.Now().Before(deadline) {
		ms = modelOf(t, d, key, model)
		if ms.State == state && (pidNot == 0 || ms.PID != pidNot) {
			return ms
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s on %s not %s within %s: %+v", model, d.url, state, within, ms)
	return ms
}

// duoTests drive duo, a model whose rank 0 is on box A (the leader) and
// rank 1 on box B, on the sim's multi-node flags.
func duoTests(t *testing.T, boxes *twoBoxes, a, b *daemon) {
	lead := waitModel(t, a, "sk-a", "duo", status.Ready, 0, 60*time.Second)
	follow := waitModel(t, b, "sk-b", "duo", status.Ready, 0, 20*time.Second)
	if len(lead.Ranks) != 2 || lead.Ranks[1].Node != "b" || follow.Rank != 1 || follow.PID == 0 {
		t.Fatalf("the group: leader %+v, follower rank %d pid %d", lead.Ranks, follow.Rank, follow.PID)
	}
	out, _ := a.gantry("ps")
	if !strings.Contains(out, "rank 1 @b") {
		t.Errorf("gantry ps on the leader does not show rank 1:\n%s", out)
	}
	out, _ = b.gantry("ps")
	if !strings.Contains(out, "rank 1 of 2, led by a") {
		t.Errorf("gantry ps on the follower does not say who leads:\n%s", out)
	}
	// Requests go to rank 0 only, from either box.
	if resp, body := ask(t, a.url, "sk-a", "duo", true); resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
		t.Errorf("duo on A: %d %.200s", resp.StatusCode, body)
	}
	if resp, body := ask(t, b.url, "sk-b", "duo", false); resp.StatusCode != 200 || resp.Header.Get("X-Gantry-Peer") != "a" {
		t.Errorf("duo asked of B was not relayed to its leader: %d peer %q %s", resp.StatusCode, resp.Header.Get("X-Gantry-Peer"), body)
	}
	// The follower refuses to start its rank on its own.
	if out, code := b.gantry("start", "duo"); code == 0 || !strings.Contains(out, "peer a leads") {
		t.Errorf("gantry start duo on the follower: exit %d: %s", code, out)
	}

	t.Run("a rank killed: the group stops and restarts, lost = 0", func(t *testing.T) {
		ta := newTally("rank 1 of a model across two boxes killed (kill -9) under load: the group stops and restarts")
		ta.key = "sk-a"
		stop := make(chan struct{})
		wg := ta.load(a.url, 4, true, func() string { return "duo" }, stop)
		waitCompleted(t, ta, 10, 20*time.Second)
		old0 := modelOf(t, a, "sk-a", "duo").PID
		old1 := modelOf(t, b, "sk-b", "duo").PID
		syscall.Kill(old1, syscall.SIGKILL)
		waitModel(t, a, "sk-a", "duo", status.Ready, old0, 60*time.Second)
		waitModel(t, b, "sk-b", "duo", status.Ready, old1, 20*time.Second)
		before := ta.completed.Load()
		waitCompleted(t, ta, before+10, 20*time.Second)
		close(stop)
		wg.Wait()
		record(t, ta)
		if ta.completed.Load() <= before {
			t.Errorf("duo served nothing after its group restarted")
		}
	})

	t.Run("a partition during the group's start", func(t *testing.T) {
		if out, code := a.gantry("stop", "duo"); code != 0 {
			t.Fatalf("gantry stop duo: %s", out)
		}
		waitModel(t, b, "sk-b", "duo", status.Stopped, 0, 20*time.Second)
		boxes.cut(b)
		healed := false
		defer func() {
			if !healed {
				boxes.heal(b)
			}
		}()
		began := time.Now()
		out, code := a.gantry("start", "duo")
		if code == 0 || !strings.Contains(out, "rank 1 on b") {
			t.Errorf("gantry start duo with the link cut: exit %d: %s", code, out)
		}
		if took := time.Since(began); took > 20*time.Second {
			t.Errorf("the start with the link cut took %s to fail", took)
		}
		boxes.heal(b)
		healed = true
		peerState(t, a, "sk-a", "b", status.PeerUp, 15*time.Second)
		// duo is always-on: its restart (with backoff) brings the group back.
		waitModel(t, a, "sk-a", "duo", status.Ready, 0, 60*time.Second)
		waitModel(t, b, "sk-b", "duo", status.Ready, 0, 20*time.Second)
	})
}

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/testbin"
)

// Two boxes, each a gantry in a network namespace of its own, linked by a
// veth pair (the cable between two Sparks, cut with `ip link set down`),
// each with a second veth to the test's own namespace (the clients).
type twoBoxes struct {
	t            *testing.T
	nsA, nsB     string
	link         string // A's end of the A–B cable
	clientA      string // how the test reaches each gantry
	clientB      string
	peerA, peerB string // how each gantry reaches the other
	portA, portB int
	distPort     int // rank 0's (box A's) port where the ranks of duo meet
	netns        bool
}

// linkCut is how this run cuts the link between the boxes, for the rows'
// names and RELIABILITY.md: set by makeTwoBoxes.
var linkCut string

const (
	linkCutNetns   = "network namespaces; the link cut with ip link set down"
	linkCutSIGSTOP = "loopback fallback (GANTRY_TEST_LINK_CUT=sigstop); no link cut: the peer frozen with SIGSTOP"
)

// makeTwoBoxes builds the namespaces, and fails the test where they cannot
// be made (./test.sh runs as root). Only when GANTRY_TEST_LINK_CUT=sigstop
// asks for it does it fall back to 127.0.0.2 and 127.0.0.3, where a "cut
// link" is a frozen peer (SIGSTOP: no answers and no resets either) — a
// weaker fault, named so in the rows. The boxes' port ranges differ: in the
// fallback their engines share one loopback.
func makeTwoBoxes(t *testing.T) *twoBoxes {
	id := os.Getpid() % 100000
	b := &twoBoxes{t: t, nsA: fmt.Sprintf("gantry-a%d", id), nsB: fmt.Sprintf("gantry-b%d", id)}
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	cleanup := func() {
		for _, ns := range []string{b.nsA, b.nsB} {
			if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
				for _, f := range strings.Fields(string(out)) {
					var pid int
					fmt.Sscan(f, &pid)
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			exec.Command("ip", "netns", "del", ns).Run()
		}
		exec.Command("ip", "link", "del", fmt.Sprintf("gca%d", id)).Run()
		exec.Command("ip", "link", "del", fmt.Sprintf("gcb%d", id)).Run()
	}
	cleanup() // a previous run that was killed
	steps := [][]string{
		{"netns", "add", b.nsA}, {"netns", "add", b.nsB},
		{"-n", b.nsA, "link", "set", "lo", "up"}, {"-n", b.nsB, "link", "set", "lo", "up"},
		// the cable between the boxes
		{"link", "add", fmt.Sprintf("gab%d", id), "netns", b.nsA, "type", "veth", "peer", "name", fmt.Sprintf("gba%d", id), "netns", b.nsB},
		{"-n", b.nsA, "addr", "add", "10.213.0.1/24", "dev", fmt.Sprintf("gab%d", id)},
		{"-n", b.nsB, "addr", "add", "10.213.0.2/24", "dev", fmt.Sprintf("gba%d", id)},
		{"-n", b.nsA, "link", "set", fmt.Sprintf("gab%d", id), "up"},
		{"-n", b.nsB, "link", "set", fmt.Sprintf("gba%d", id), "up"},
		// the clients' links
		{"link", "add", fmt.Sprintf("gca%d", id), "type", "veth", "peer", "name", "cl", "netns", b.nsA},
		{"link", "add", fmt.Sprintf("gcb%d", id), "type", "veth", "peer", "name", "cl", "netns", b.nsB},
		{"addr", "add", "10.213.1.1/24", "dev", fmt.Sprintf("gca%d", id)},
		{"addr", "add", "10.213.2.1/24", "dev", fmt.Sprintf("gcb%d", id)},
		{"link", "set", fmt.Sprintf("gca%d", id), "up"}, {"link", "set", fmt.Sprintf("gcb%d", id), "up"},
		{"-n", b.nsA, "addr", "add", "10.213.1.2/24", "dev", "cl"}, {"-n", b.nsA, "link", "set", "cl", "up"},
		{"-n", b.nsB, "addr", "add", "10.213.2.2/24", "dev", "cl"}, {"-n", b.nsB, "link", "set", "cl", "up"},
	}
	switch mode := os.Getenv("GANTRY_TEST_LINK_CUT"); mode {
	case "sigstop":
		t.Logf("GANTRY_TEST_LINK_CUT=sigstop: the boxes are 127.0.0.2 and 127.0.0.3 on this host's loopback, and a cut link is a frozen peer (SIGSTOP)")
		linkCut = linkCutSIGSTOP
		b.clientA, b.clientB = "127.0.0.2", "127.0.0.3"
		b.peerA, b.peerB = b.clientA, b.clientB
		b.portA, b.portB, b.distPort = testbin.FreePort(t), testbin.FreePort(t), testbin.FreePort(t)
		return b
	case "", "netns":
	default:
		t.Fatalf("GANTRY_TEST_LINK_CUT=%q: want netns (the default) or sigstop", mode)
	}
	t.Cleanup(cleanup)
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatalf("the two boxes' network namespaces cannot be made: %v (run as root, as ./test.sh does; GANTRY_TEST_LINK_CUT=sigstop runs the weaker loopback fallback instead)", err)
		}
	}
	linkCut = linkCutNetns
	b.netns, b.link = true, fmt.Sprintf("gab%d", id)
	b.clientA, b.clientB = "10.213.1.2", "10.213.2.2"
	b.peerA, b.peerB = "10.213.0.1", "10.213.0.2"
	b.portA, b.portB, b.distPort = 4000, 4000, 29500
	return b
}

// start runs a gantry on box ns ("" in the fallback) with cfg: it
// listens on host:port, and PEERURL is the other box's gateway.
func (b *twoBoxes) start(ns, host string, port int, peerURL, cfg string) *daemon {
	t := b.t
	home := t.TempDir()
	listen := fmt.Sprintf("%s:%d", host, port)
	d := &daemon{t: t, url: "http://" + listen, home: home, out: newSyncBuffer()}
	if b.netns {
		listen = fmt.Sprintf("0.0.0.0:%d", port) // the box's every address, as on a Spark
		d.wrap = []string{"ip", "netns", "exec", ns}
	}
	cfg = strings.ReplaceAll(cfg, "LISTEN", listen)
	cfg = strings.ReplaceAll(cfg, "ROOT", home+"/ai")
	cfg = strings.ReplaceAll(cfg, "PEERURL", peerURL)
	cfg = strings.ReplaceAll(cfg, "DISTADDR", fmt.Sprintf("%s:%d", b.peerA, b.distPort))
	d.config = home + "/gantry.yaml"
	if err := os.WriteFile(d.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d.args = []string{"serve", "--config", d.config}
	d.launch()
	return d
}

// startBoth starts B, then A, and waits until each sees the other.
func (b *twoBoxes) startBoth() (a, bb *daemon) {
	bb = b.start(b.nsB, b.clientB, b.portB, fmt.Sprintf("http://%s:%d", b.peerA, b.portA), boxB)
	a = b.start(b.nsA, b.clientA, b.portA, fmt.Sprintf("http://%s:%d", b.peerB, b.portB), boxA)
	peerState(b.t, a, "sk-a", "b", status.PeerUp, 15*time.Second)
	peerState(b.t, bb, "sk-b", "a", status.PeerUp, 15*time.Second)
	return a, bb
}

// cut and heal the cable between the boxes; each fails the test unless
// the link is then cut (or whole) as seen from box A.
func (b *twoBoxes) cut(peerB *daemon) {
	b.t.Helper()
	if b.netns {
		if out, err := exec.Command("ip", "-n", b.nsA, "link", "set", b.link, "down").CombinedOutput(); err != nil {
			b.t.Fatalf("cut: %v %s", err, out)
		}
	} else {
		peerB.cmd.Process.Signal(syscall.SIGSTOP)
	}
	if err := b.linkIsCut(peerB); err != nil {
		b.t.Fatalf("after the cut: %v", err)
	}
}

func (b *twoBoxes) heal(peerB *daemon) {
	b.t.Helper()
	if b.netns {
		if out, err := exec.Command("ip", "-n", b.nsA, "link", "set", b.link, "up").CombinedOutput(); err != nil {
			b.t.Fatalf("heal: %v %s", err, out)
		}
	} else {
		peerB.cmd.Process.Signal(syscall.SIGCONT)
	}
	if err := b.linkIsCut(peerB); err == nil {
		b.t.Fatalf("after the heal the link is still cut")
	}
}

// linkIsCut says whether box A cannot reach B's gantry (an error says why
// not): with namespaces, a TCP connect from A's namespace to B's address
// across the cable must fail without an answer — a refusal is an answer,
// so the link carries packets; in the fallback, B must be stopped.
func (b *twoBoxes) linkIsCut(peerB *daemon) error {
	if !b.netns {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", peerB.cmd.Process.Pid))
		if i := strings.LastIndexByte(string(st), ')'); err == nil && i > 0 && len(st) > i+2 && st[i+2] == 'T' {
			return nil
		}
		return fmt.Errorf("peer B (pid %d) is not stopped: %.80s %v", peerB.cmd.Process.Pid, st, err)
	}
	addr := fmt.Sprintf("%s/%d", b.peerB, b.portB)
	out, err := exec.Command("ip", "netns", "exec", b.nsA, "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+addr).CombinedOutput()
	switch {
	case err == nil:
		return fmt.Errorf("box A still connects to %s across the link", addr)
	case strings.Contains(string(out), "refused"):
		return fmt.Errorf("box A reaches %s across the link (refused: the packets flow): %s", addr, out)
	}
	return nil
}

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

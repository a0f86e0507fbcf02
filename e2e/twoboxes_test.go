package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

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
	linkCutNetns   = "network namespaces, the link cut with ip link set down"
	linkCutSIGSTOP = "loopback fallback, GANTRY_TEST_LINK_CUT=sigstop: not a link cut, the peer frozen with SIGSTOP"
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
// the link is then cut (or whole) as seen from box A — within a few
// seconds: a signal (the fallback's SIGSTOP, SIGCONT) arrives when the
// kernel delivers it.
func (b *twoBoxes) cut(peerB *daemon) {
	b.t.Helper()
	if b.netns {
		if out, err := exec.Command("ip", "-n", b.nsA, "link", "set", b.link, "down").CombinedOutput(); err != nil {
			b.t.Fatalf("cut: %v %s", err, out)
		}
	} else {
		peerB.cmd.Process.Signal(syscall.SIGSTOP)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := b.linkIsCut(peerB)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.heal(peerB) // the rest of the test needs B
			b.t.Fatalf("after the cut: %v", err)
		}
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
	for deadline := time.Now().Add(10 * time.Second); b.linkIsCut(peerB) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("10 s after the heal the link is still cut")
		}
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

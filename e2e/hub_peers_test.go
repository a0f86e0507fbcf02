package e2e

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/hub/hubtest"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/testbin"
)

const hubBoxA = `listen: LISTEN
root: ROOT
port_range: 31000-31499
auth: {api_keys: [sk-a]}
memory: {total: 48GiB, reserve: 8GiB}
hub: {endpoint: "HUBURL"}
peers:
  b: {url: "PEERURL", token: sk-b, health_interval: 300ms, connect_timeout: 1s}
models:
  alpha: {engine: sim, memory: 1GiB}
`

const hubBoxB = `listen: LISTEN
root: ROOT
port_range: 31500-31999
auth: {api_keys: [sk-b]}
memory: {total: 48GiB, reserve: 8GiB}
peers:
  a: {url: "PEERURL", token: sk-a, health_interval: 300ms, connect_timeout: 1s}
models:
  beta: {engine: sim, memory: 1GiB}
`

// pairOn is the group model both boxes serve across nodes, on the files
// get put there.
const pairOnA = `  pair: {engine: sim, memory: 1GiB, path: llama/tiny-llama, nodes: [local, b], dist_init_addr: "DISTADDR",
         args: [--flavor, sglang, --load-time, 200ms]}
`
const pairOnB = `  pair: {engine: sim, memory: 1GiB, path: llama/tiny-llama, nodes: [a, local], dist_init_addr: "DISTADDR",
         args: [--flavor, sglang, --load-time, 200ms]}
`

// TestHubTwoBoxes: two gantry instances in network namespaces. get on
// box A with --peers b fetches the model from the Hub once and box B
// copies it from A over the link (B never reaches the Hub); both hold the
// same commit, and a model across both boxes starts. When B holds another
// commit, the group refuses to start, naming both.
func TestHubTwoBoxes(t *testing.T) {
	_, tiny := vllmBin(t)
	boxes := makeTwoBoxes(t)
	public := "127.0.0.1"
	if boxes.netns {
		public = "10.213.1.1" // the host, from box A's side; box B has no route to it
	}
	s, err := hubtest.New(hubtest.Options{Addr: "0.0.0.0:0", CDNAddr: "0.0.0.0:0", PublicHost: public, HashCache: hubtest.HashCache()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.PushFixtures(hubtest.Fixtures{TinyModel: tiny, Configs: hubtest.Configs(), Scratch: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	cfgA := strings.ReplaceAll(hubBoxA, "HUBURL", s.URL)
	bb := boxes.start(boxes.nsB, boxes.clientB, boxes.portB, fmt.Sprintf("http://%s:%d", boxes.peerA, boxes.portA), hubBoxB)
	a := boxes.start(boxes.nsA, boxes.clientA, boxes.portA, fmt.Sprintf("http://%s:%d", boxes.peerB, boxes.portB), cfgA)
	peerState(t, a, "sk-a", "b", status.PeerUp, 15*time.Second)
	peerState(t, bb, "sk-b", "a", status.PeerUp, 15*time.Second)

	// get runs on box A (in its namespace), as a user there would.
	get := append(append([]string{}, a.wrap...), "env", "HOME="+a.home)
	out, code := runWrapped(t, get, "get", hubtest.TinyRepo, "--peers", "b", "--config", a.config)
	if code != 0 {
		t.Fatalf("get --peers b: %d\n%s\nA:\n%s\nB:\n%s", code, out, a.out.String(), bb.out.String())
	}
	srcA, errA := fetch.ReadSource(filepath.Join(a.home, "ai", "models", "llama", "tiny-llama"))
	srcB, errB := fetch.ReadSource(filepath.Join(bb.home, "ai", "models", "llama", "tiny-llama"))
	if errA != nil || errB != nil || !srcA.Complete || !srcB.Complete || srcA.Commit != srcB.Commit {
		t.Fatalf("the records: A %+v %v, B %+v %v\n%s", srcA, errA, srcB, errB, out)
	}
	fileB, _ := os.ReadFile(filepath.Join(bb.home, "ai", "models", "llama", "tiny-llama", "model.safetensors"))
	if w := int64(len(fileB)) - 8 - int64(binary.LittleEndian.Uint64(fileB)); s.WeightsServed() != w {
		t.Errorf("the Hub served %d weight bytes for a file of %d: B did not copy from A", s.WeightsServed(), w)
	}
	if !strings.Contains(out, "b: copying "+hubtest.TinyRepo) {
		t.Errorf("get's output:\n%s", out)
	}

	// Both boxes serve the model across nodes now: the same commit, a start.
	addPair := func(d *daemon, entry string) {
		b, _ := os.ReadFile(d.config)
		entry = strings.ReplaceAll(entry, "DISTADDR", fmt.Sprintf("%s:%d", boxes.peerA, boxes.distPort))
		os.WriteFile(d.config, append(b, entry...), 0o644)
		d.cmd.Process.Signal(syscall.SIGHUP)
	}
	addPair(bb, pairOnB)
	addPair(a, pairOnA)
	waitConfigured := func(d *daemon) {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if strings.Contains(d.statusJSON(), `"name": "pair"`) {
				return
			}
		}
		t.Fatalf("pair is not in the config after the reload:\n%s", d.out.String())
	}
	waitConfigured(bb)
	waitConfigured(a)
	if out, code := a.gantry("start", "pair"); code != 0 {
		t.Fatalf("start pair with the same commit on both: %s\nB:\n%s", out, bb.out.String())
	}
	a.gantry("stop", "pair")

	// B holds another commit of the model now.
	recB := filepath.Join(bb.home, "ai", "models", "llama", "tiny-llama", fetch.SourceName)
	b, _ := os.ReadFile(recB)
	other := strings.Repeat("e", 40)
	os.WriteFile(recB, []byte(strings.ReplaceAll(string(b), srcB.Commit, other)), 0o644)
	out, code = a.gantry("start", "pair")
	if code == 0 || !strings.Contains(out, "the leader's files are commit "+srcA.Commit+", this box's are commit "+other) {
		t.Errorf("start with two commits: exit %d\n%s", code, out)
	}
}

// runWrapped runs gantry through argv prefix (ip netns exec NS env …).
func runWrapped(t *testing.T, prefix []string, args ...string) (string, int) {
	t.Helper()
	full := append(append(append([]string{}, prefix...), testbin.Gantry(t)), args...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = cleanEnv()
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(b), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(b), 0
}

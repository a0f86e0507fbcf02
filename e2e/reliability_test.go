package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// RELIABILITY.md is written by a run of the fault suite: `./test.sh
// --reliability` (or GANTRY_RELIABILITY_OUT=FILE with ./test.sh's
// environment) writes the rows the run recorded, each stamped with its
// test's verdict, and says how the run ended, on what machine, and how the
// links between the two boxes were cut.

func TestMain(m *testing.M) {
	closeInheritedFiles()
	code := m.Run()
	if out := os.Getenv("GANTRY_RELIABILITY_OUT"); out != "" && len(rows) > 0 {
		rowsMu.Lock()
		r := append([]*tally(nil), rows...)
		rowsMu.Unlock()
		if err := writeReliability(out, r, code, linkCut, thisMachine()); err != nil {
			fmt.Fprintf(os.Stderr, "RELIABILITY: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// machine is where the run happened, as the report states it.
type machine struct {
	cores       int
	cpu, commit string
}

// thisMachine reads the machine: its cores (those this process may use),
// its CPU's model name, Go's version, and the commit the tree is at.
func thisMachine() machine {
	m := machine{cores: runtime.NumCPU(), cpu: runtime.GOARCH, commit: "unknown commit"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v) + ", " + runtime.GOARCH
				break
			}
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = "commit " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			m.commit += " with uncommitted changes"
		}
	}
	return m
}

// writeReliability writes the report of rows to path: code is the test
// binary's exit status, cut how the two-box rows cut the link ("" when
// none ran).
func writeReliability(path string, rows []*tally, code int, cut string, at machine) error {
	var b strings.Builder
	failed := 0
	for _, r := range rows {
		if r.failed == nil || r.failed() {
			failed++
		}
	}
	verdict := "**PASS**: every test of the run passed"
	if code != 0 || failed > 0 {
		verdict = fmt.Sprintf("**FAIL**: the run ended with exit status %d, %d of its %d rows failed (a test that failed before its row was recorded has none)", code, failed, len(rows))
	}
	b.WriteString("# Reliability\n\n")
	fmt.Fprintf(&b, "Written by the fault suite (`./test.sh --reliability`; or `GANTRY_RELIABILITY_OUT=$PWD/RELIABILITY.md go test -run Fault ./e2e` in ./test.sh's environment) on %s, at %s, on a machine with %d cores (%s), %s. Verdict: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), at.commit, at.cores, at.cpu, runtime.Version(), verdict)
	b.WriteString("Each row injects one fault into a real `gantry serve` with real engines (`gantry sim`, or the engine stand-in in containers of a real Docker daemon) while clients send requests, and checks that the fault took effect (the restarts, kills, refusals and their words it causes). ")
	b.WriteString("A request is *completed* (200, and a stream ends with `[DONE]`), *refused* with a documented error (an OpenAI-shaped error whose code the README lists, or a stream that ends with an error event), or *lost* (anything else: a hang, a silent cut, an undocumented answer). Lost must be 0. A row is PASS when its test passed: lost = 0 and every check of its fault held.\n\n")
	b.WriteString("| result | fault | sent | completed | refused (documented) | lost | how they were refused |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		var why []string
		for k, n := range r.why {
			if strings.HasPrefix(k, "refused: ") {
				why = append(why, fmt.Sprintf("%s ×%d", strings.TrimPrefix(k, "refused: "), n))
			}
		}
		sort.Strings(why)
		result := "PASS"
		if r.failed == nil || r.failed() {
			result = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s |\n", result, r.name, r.sent.Load(), r.completed.Load(), r.refused.Load(), r.lost.Load(), strings.Join(why, "; "))
	}
	b.WriteString("\nThe one refusal that is not an HTTP answer: requests in flight while gantry itself is killed (`kill -9`) lose their connection, and new ones are refused until it is back; clients retry. The engines survive, and the restarted gantry adopts them.\n")
	switch cut {
	case "":
	case linkCutNetns:
		b.WriteString("\nThe rows about two boxes ran two gantry instances, each in a network namespace of its own joined by a veth pair (`e2e/peers_test.go`), with clients on box A asking for a model only box B has (`beta`) and one both have (`both`, preferring B), or for `duo`, whose rank 0 runs on A and rank 1 on B. A cut link is `ip link set down` on A's end of the pair — no reset reaches either side, and A's checks of B take it for down — and the row checks that a TCP connect from A's namespace to B gets no answer.\n")
	default:
		fmt.Fprintf(&b, "\nThe rows about two boxes ran two gantry instances on this host's loopback (127.0.0.2 and .3; %s). A frozen peer is a weaker fault than a cut link: its kernel still answers TCP.\n", cut)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// TestReliabilityReport: the report stamps each row with its test's
// verdict, fails the whole run when the run failed, and states the
// machine's core count and the link-cut mode.
func TestReliabilityReport(t *testing.T) {
	pass, fail := newTally("a fault that held"), newTally("a fault that did not")
	pass.sent.Add(3)
	pass.completed.Add(2)
	pass.refusedWith("503 model_unavailable", "model_unavailable", "down")
	pass.failed = func() bool { return false }
	fail.sent.Add(1)
	fail.lost.Add(1)
	fail.failed = func() bool { return true }
	path := t.TempDir() + "/RELIABILITY.md"
	at := machine{cores: 7, cpu: "a test CPU", commit: "commit abc"}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if err := writeReliability(path, []*tally{pass, fail}, 1, linkCutSIGSTOP, at); err != nil {
		t.Fatal(err)
	}
	got := read()
	for _, want := range []string{"| PASS | a fault that held | 3 | 2 | 1 | 0 | 503 model_unavailable ×1 |", "| **FAIL** | a fault that did not | 1 | 0 | 0 | 1 |",
		"Verdict: **FAIL**: the run ended with exit status 1, 1 of its 2 rows failed", "7 cores (a test CPU)", "commit abc", "SIGSTOP", "not a link cut"} {
		if !strings.Contains(got, want) {
			t.Errorf("the report lacks %q:\n%s", want, got)
		}
	}

	if err := writeReliability(path, []*tally{pass}, 0, linkCutNetns, thisMachine()); err != nil {
		t.Fatal(err)
	}
	got = read()
	for _, want := range []string{"Verdict: **PASS**", fmt.Sprintf("with %d cores", runtime.NumCPU()), "ip link set down"} {
		if !strings.Contains(got, want) {
			t.Errorf("the report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "FAIL") {
		t.Errorf("a passing run's report says FAIL:\n%s", got)
	}
}

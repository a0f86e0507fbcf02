package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// The suite's own checks, each fed the fault it is there to catch: a check
// that cannot fail proves nothing.

// TestLeftoverCheckSeesTheChild: the check of the start_timeout row
// (noneLeft) sees a SIGTERM-ignoring grandchild that outlived its engine —
// `gantry sim --idle-child`, with no marker in its command line — when only
// the engine itself was killed, and passes once the group is gone.
func TestLeftoverCheckSeesTheChild(t *testing.T) {
	kv := fmt.Sprintf("GANTRY_TEST_MARKER=e2e-leftover-%d", time.Now().UnixNano())
	cmd := exec.Command(testbin.Gantry(t), "sim", "--hang-load", "--spawn-child", "--ignore-sigterm",
		"--port", fmt.Sprint(testbin.FreePort(t)))
	cmd.Env = append(cleanEnv(), kv)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A file, not a pipe: Wait would wait for the surviving child to
	// close a pipe's end.
	out, err := os.Create(filepath.Join(t.TempDir(), "sim.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	said := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	group := waitProcsWithEnv(t, kv, 2, 10*time.Second)
	// The child says it waits once it ignores SIGTERM (as it long has when
	// gantry's start_timeout comes).
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(said(), "sim child: pid"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the child never said it waits:\n%s", said())
		}
	}

	// What a supervisor that forgets the group does: SIGTERM (ignored), and
	// SIGKILL for the leader alone.
	syscall.Kill(-pgid, syscall.SIGTERM)
	cmd.Process.Kill()
	cmd.Wait()
	err = noneLeft(kv, group)
	if err == nil {
		t.Fatalf("the check missed the child that outlived its engine (group %v)", group)
	}
	t.Logf("the check, with the child left alive: %v", err)

	syscall.Kill(-pgid, syscall.SIGKILL) // the group, as gantry kills it
	for deadline := time.Now().Add(10 * time.Second); noneLeft(kv, group) != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGKILL of the group: %v", noneLeft(kv, group))
		}
	}
}

// TestClientScriptsProveTheirAsserts: each client script refuses to run
// with its asserts stripped (python -O), so it cannot print "ok" having
// checked nothing; and the scripts' runs are not switched off by
// PYTHONOPTIMIZE in the test's own environment.
func TestClientScriptsProveTheirAsserts(t *testing.T) {
	scripts, err := filepath.Glob("clients/*.py")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no client scripts: %v", err)
	}
	for _, p := range scripts {
		out, err := exec.Command(pythonClients(t), "-O", p).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "asserts are stripped") || strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
			t.Errorf("%s under python -O: %v\n%s", p, err, out)
		}
	}
	// Through clientCmd, with no gantry to talk to: each gets past its
	// guard (asserts live) and fails on the missing GANTRY_URL.
	t.Setenv("PYTHONOPTIMIZE", "2")
	t.Setenv("PYTHONINSPECT", "1")
	for _, p := range scripts {
		out, err := clientCmd(t, filepath.Base(p)).CombinedOutput()
		if err == nil || strings.Contains(string(out), "asserts are stripped") || !strings.Contains(string(out), "KeyError: 'GANTRY_") {
			t.Errorf("%s through clientCmd with PYTHONOPTIMIZE set outside: %v\n%s", p, err, out)
		}
	}
}

// TestLinkCutIsChecked: the check behind the link-cut rows (linkIsCut)
// reports a whole link as not cut, and cut and heal pass only once box A
// cannot, and then can again, reach B.
func TestLinkCutIsChecked(t *testing.T) {
	b := makeTwoBoxes(t)
	argv := []string{testbin.Gantry(t), "sim", "--host", b.peerB, "--port", fmt.Sprint(b.portB)}
	if b.netns {
		argv = append([]string{"ip", "netns", "exec", b.nsB}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...) // B: a server at B's address, as B's gantry
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	peer := &daemon{t: t, cmd: cmd}
	if err := b.linkIsCut(peer); err == nil {
		t.Fatalf("the check takes a whole link (%s) for cut", linkCut)
	} else {
		t.Logf("the check on the whole link: %v", err)
	}
	b.cut(peer)
	b.heal(peer)
}

// TestRSSReadFails: the memory bounds' reader fails on a process it cannot
// read — gone, or a zombie — instead of an RSS of 0, which passes every
// bound.
func TestRSSReadFails(t *testing.T) {
	if n, err := readRSS(os.Getpid()); err != nil || n <= 0 {
		t.Fatalf("this process's RSS: %d, %v", n, err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if n, err := readRSS(gone.Process.Pid); err == nil {
		t.Errorf("an RSS of %d bytes for a process that is gone", n)
	}
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", zombie.Process.Pid))
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("true did not exit: %s", st)
		}
	}
	if n, err := readRSS(zombie.Process.Pid); err == nil {
		t.Errorf("an RSS of %d bytes for a zombie", n)
	}
}

// TestLeftContainersCheckFails: the check for containers left after
// gantry stopped fails when the docker CLI does, rather than finding none.
func TestLeftContainersCheckFails(t *testing.T) {
	if left, err := containersOfRoot("unix:///nonexistent/docker.sock", "/nowhere"); err == nil {
		t.Errorf("docker ps against no daemon: no error, containers %q", left)
	} else {
		t.Logf("against no daemon: %v", err)
	}
	if left, err := containersOfRoot(dockerHost(t), t.TempDir()); err != nil || left != "" {
		t.Errorf("against the test daemon, for a root with no gantry: %q, %v", left, err)
	}
}

// TestChildrenInheritNoFiles: a descriptor this process inherited (as the
// runner's lock) reaches a child until closeInheritedFiles, and not after.
func TestChildrenInheritNoFiles(t *testing.T) {
	fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0) // no O_CLOEXEC: as inherited
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	inChild := func() bool {
		return exec.Command("sh", "-c", fmt.Sprintf("[ -e /proc/$$/fd/%d ]", fd)).Run() == nil
	}
	if !inChild() {
		t.Fatalf("descriptor %d, not close-on-exec, did not reach a child: the check cannot see a leak", fd)
	}
	closeInheritedFiles()
	if inChild() {
		t.Errorf("descriptor %d still reaches a child after closeInheritedFiles", fd)
	}
}

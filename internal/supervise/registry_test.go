package supervise

import (
	"github.com/gantryhq/gantry/internal/statefile"
	"log/slog"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSweepFindsAnEngineByItsToken: an engine whose pid never reached the
// registry (its gantry died between spawn and record) is found by the
// token in its environment and stopped with its group.
func TestSweepFindsAnEngineByItsToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engines.json")
	token := newToken()
	cmd := exec.Command("sh", "-c", "sleep 60 & exec sleep 60")
	cmd.Env = []string{TokenEnv + "=" + token, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait()
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })

	first := OpenRegistry(path)
	first.put("m", Record{Token: token}) // spawned, pid not yet recorded
	if got := Locate(Record{Token: token}); got != pid {
		t.Fatalf("Locate by token: %d, want the group leader %d", got, pid)
	}
	if got := Locate(Record{Token: "someone-else"}); got != 0 {
		t.Errorf("a foreign token located pid %d", got)
	}
	next := OpenRegistry(path) // the next gantry
	swept := next.Sweep(slog.New(slog.DiscardHandler), time.Second)
	if len(swept) != 1 || swept[0] != "m" {
		t.Errorf("swept %v", swept)
	}
	if groupAlive(pid) {
		t.Error("the left-behind engine's group still runs")
	}
	if _, ok := OpenRegistry(path).previous("m"); ok {
		t.Error("the swept record is still in the file")
	}
}

// TestRecordsOfALivingGantryAreLeftAlone: a record whose owner is another
// living gantry is neither offered for adoption nor swept, and stays in
// the file.
func TestRecordsOfALivingGantryAreLeftAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engines.json")
	owner := exec.Command("sleep", "60") // stands for the other gantry
	engine := exec.Command("sleep", "60")
	token := newToken()
	engine.Env = []string{TokenEnv + "=" + token}
	engine.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	for _, c := range []*exec.Cmd{owner, engine} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		go c.Wait()
		t.Cleanup(func() { c.Process.Kill() })
	}
	rec := Record{Token: token, PID: engine.Process.Pid, Owner: owner.Process.Pid, OwnerTicks: startTicks(owner.Process.Pid)}
	if err := statefile.WriteJSON(path, map[string]Record{"m": rec}); err != nil {
		t.Fatal(err)
	}
	r := OpenRegistry(path)
	if _, ok := r.previous("m"); ok {
		t.Error("a living gantry's engine was offered for adoption")
	}
	if swept := r.Sweep(slog.New(slog.DiscardHandler), time.Second); len(swept) != 0 || !groupAlive(engine.Process.Pid) {
		t.Errorf("swept %v; engine alive %v", swept, groupAlive(engine.Process.Pid))
	}
	r.put("n", Record{Token: newToken()})
	var onDisk map[string]Record
	statefile.ReadJSON(path, &onDisk)
	if onDisk["m"].Token != token {
		t.Errorf("the other gantry's record left the file: %+v", onDisk)
	}
	// Once its gantry is dead, the engine is a leftover like any other.
	owner.Process.Kill()
	owner.Process.Wait()
	if _, ok := OpenRegistry(path).previous("m"); !ok {
		t.Error("a dead gantry's record is not offered")
	}
}

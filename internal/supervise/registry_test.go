package supervise

import (
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

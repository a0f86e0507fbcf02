package statefile

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLockRootIsExclusive: a second lock of the same root is refused with
// the holder's pid, address and time, and succeeds once the first is
// released.
func TestLockRootIsExclusive(t *testing.T) {
	root := t.TempDir()
	since := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	first, err := LockRoot(root, Owner{PID: os.Getpid(), Listen: "127.0.0.1:4000", Since: since})
	if err != nil {
		t.Fatal(err)
	}
	first.SetOwner(Owner{PID: os.Getpid(), Listen: "127.0.0.1:4100", Since: since})
	_, err = LockRoot(root, Owner{PID: 1, Listen: "127.0.0.1:4001", Since: time.Now()})
	var inUse *InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("second lock: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"root " + root + " is in use by gantry pid " + strconv.Itoa(os.Getpid()) + " listening on 127.0.0.1:4100 since ",
		since.Local().Format("2006-01-02 15:04:05"), "stop it, or give this config another root"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	first.Unlock()
	again, err := LockRoot(root, Owner{PID: 2})
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	again.Unlock()
}

// TestLockRootWaitsForADyingHolder: a holder whose process is gone (killed
// a moment ago, its files not yet closed) is waited for, not reported.
func TestLockRootWaitsForADyingHolder(t *testing.T) {
	root := t.TempDir()
	first, err := LockRoot(root, Owner{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	first.SetOwner(Owner{PID: 1 << 30}) // no such process
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(200 * time.Millisecond) // the kernel closing a killed gantry's files
		first.Unlock()
	}()
	second, err := LockRoot(root, Owner{PID: os.Getpid()})
	<-released
	if err != nil {
		t.Fatalf("a dying holder was reported: %v", err)
	}
	second.Unlock()
}

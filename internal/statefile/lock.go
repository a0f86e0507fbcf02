package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LockName is the lock file in <root>/state that one gantry holds while it
// serves the root.
const LockName = "gantry.lock"

// Owner is who holds a root: written into the lock file, so that a second
// gantry can say whom it met.
type Owner struct {
	PID    int       `json:"pid"`
	Listen string    `json:"listen"`
	Since  time.Time `json:"since"`
}

// InUseError is Lock's answer when another gantry holds the root.
type InUseError struct {
	Root  string
	Owner Owner // zero when the file could not be read
}

func (e *InUseError) Error() string {
	who := "another gantry"
	if e.Owner.PID > 0 {
		who = fmt.Sprintf("gantry pid %d", e.Owner.PID)
	}
	if e.Owner.Listen != "" {
		who += " listening on " + e.Owner.Listen
	}
	if !e.Owner.Since.IsZero() {
		who += " since " + e.Owner.Since.Local().Format("2006-01-02 15:04:05 MST")
	}
	return fmt.Sprintf("root %s is in use by %s — stop it, or give this config another root", e.Root, who)
}

// Lock is the held lock of a root. The kernel drops it when the process
// dies however it dies (kill -9 included), so it never goes stale.
type Lock struct {
	mu    sync.Mutex
	f     *os.File
	owner Owner
}

// LockRoot takes the exclusive lock of root (a flock on
// <root>/state/gantry.lock) for owner, or returns an *InUseError naming the
// gantry that holds it. The file's descriptor is close-on-exec, so engines
// gantry starts never inherit the lock.
func LockRoot(root string, owner Owner) (*Lock, error) {
	dir := filepath.Join(root, "state")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, LockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := flockSoon(f, filepath.Join(dir, LockName)); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Root: root, Owner: readOwner(filepath.Join(dir, LockName))}
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	l := &Lock{f: f}
	if err := l.SetOwner(owner); err != nil {
		l.Unlock()
		return nil, err
	}
	return l, nil
}

// SetOwner rewrites the owner shown to a second gantry (the listen address
// becomes known once the listener is open).
func (l *Lock) SetOwner(o Owner) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owner = o
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err = l.f.WriteAt(append(b, '\n'), 0)
	return err
}

// Owner is the owner last written.
func (l *Lock) Owner() Owner {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner
}

// Unlock releases the root. The file stays: removing it would let a
// second gantry lock a new file while a third still holds the old one.
func (l *Lock) Unlock() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close() // closing the last descriptor drops the flock
		l.f = nil
	}
}

// flockSoon takes the lock at once, or within two seconds while its holder
// is dying: a gantry killed a moment ago keeps its lock until the kernel
// has closed its files. A living holder is refused at once.
func flockSoon(f *os.File, path string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		if o := readOwner(path); o.PID > 0 && running(o.PID) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running reports whether pid is a process that has not exited (a zombie
// has).
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // another pid namespace, or /proc hidden: assume it runs
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// readOwner reads the owner a holder wrote; zero when it cannot.
func readOwner(path string) Owner {
	var o Owner
	b, err := os.ReadFile(path)
	if err == nil {
		json.Unmarshal(b, &o) //nolint:errcheck // a half-written owner is shown as unknown
	}
	return o
}

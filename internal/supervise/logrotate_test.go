package supervise

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// logSizes are the sizes of a log and its rotated copies.
func logSizes(t *testing.T, path string, keep int) []int64 {
	t.Helper()
	var out []int64
	for i := 0; i <= keep; i++ {
		p := path
		if i > 0 {
			p = path + "." + string(rune('0'+i))
		}
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		out = append(out, st.Size())
	}
	return out
}

// engineLog opens a log at a new path with an engine's own handle to it;
// both are closed when the test ends.
func engineLog(t *testing.T, limit int64, keep, memLines int) (l *Log, w *os.File, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "m.log")
	l, err := NewLog(path, limit, keep, memLines)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if w, err = l.Writer(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return l, w, path
}

// TestLogOfAFastEngineStaysWithinItsSize: an engine writes straight into
// its log file, far faster than gantry reads it (40 MiB before gantry
// looks once). No file — the live one or a rotated copy — passes the
// limit by more than a line: a rotated copy keeps the newest output, and
// gantry keeps the newest lines in memory, with a mark where it skipped.
// Both ways of rotating: cutting the file's head (ext4, XFS) and copying
// then truncating (file systems that cannot cut a head: tmpfs, btrfs).
func TestLogOfAFastEngineStaysWithinItsSize(t *testing.T) {
	for _, truncate := range []bool{false, true} {
		t.Run(fmt.Sprintf("truncate=%v", truncate), func(t *testing.T) { fastEngineStaysWithinItsSize(t, truncate) })
	}
}

func fastEngineStaysWithinItsSize(t *testing.T, truncate bool) {
	const limit = 1 << 20
	l, w, path := engineLog(t, limit, 2, 5000)
	l.mu.Lock()
	l.noCollapse = truncate
	l.mu.Unlock()
	line := []byte(strings.Repeat("x", 1000) + "\n")
	l.mu.Lock() // gantry is busy elsewhere: nothing reads or rotates meanwhile
	for i := 0; i < 40<<10; i++ {
		w.Write(line)
	}
	w.Write([]byte("the last line\n"))
	l.mu.Unlock()
	l.Poll()
	for _, s := range logSizes(t, path, 2) {
		if s > limit+int64(len(line)) {
			t.Errorf("a log file is %d bytes for a %d byte limit: %v", s, limit, logSizes(t, path, 2))
		}
	}
	if got := l.LastLine(); got != "the last line" {
		t.Errorf("the last line in memory: %.80q", got)
	}
	if tail := strings.Join(l.Tail(5000), "\n"); !strings.Contains(tail, "skipped") {
		t.Errorf("no mark of the skipped output in %.300q", tail)
	}
	// The copy keeps the newest output after a mark; the live file goes on
	// from where the copy ends (the cut may fall mid-line): together they
	// are whole lines, the last one last.
	rotated, _ := os.ReadFile(path + ".1")
	live, _ := os.ReadFile(path)
	mark, rest, _ := bytes.Cut(rotated, []byte("\n"))
	joined := append(rest, live...)
	body, ok := bytes.CutSuffix(joined, []byte("the last line\n"))
	if !bytes.HasPrefix(mark, []byte("[gantry]")) || !ok || len(body)%len(line) != 0 || len(bytes.ReplaceAll(body, line, nil)) != 0 {
		t.Errorf("the rotated copy and the file are not the newest output after a mark: copy starts %.60q, file ends %.40q", rotated, live[max(0, len(live)-40):])
	}
}

// TestLogRotatesAtTheSizeWithoutAPoll: the engine's writes wake gantry
// (inotify), so the log is rotated when it passes its size — not when the
// next poll comes (every 250 ms: a fast engine wrote 150 MB into a 20 MiB
// log in between). Nothing here polls: only the writes can cause the
// rotation the engine waits for.
func TestLogRotatesAtTheSizeWithoutAPoll(t *testing.T) {
	const limit = 256 << 10
	_, w, path := engineLog(t, limit, 1, 10)
	chunk := bytes.Repeat([]byte(strings.Repeat("y", 99)+"\n"), 1024) // 100 KiB
	for round := 0; round < 5; round++ {
		for written := 0; written <= limit; written += len(chunk) {
			w.Write(chunk)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := os.Stat(path)
			if err == nil && st.Size() <= limit {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the log is %d bytes, over its %d byte size, and nobody rotated it", round, st.Size(), limit)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestLogKeepsWhatTheEngineWritesWhileItRotates: the engine writes its
// last words in the very moment gantry shortens the file (after the copy,
// before the cut). They stay — in the live file, once, and in memory —
// because the cut removes only the bytes already copied, and the engine's
// append lands after them. Before, the file was truncated under the
// engine: what it wrote since gantry last read was gone (a crash's last
// lines, exactly what a diagnosis needs).
func TestLogKeepsWhatTheEngineWritesWhileItRotates(t *testing.T) {
	const limit = 1 << 20
	l, w, path := engineLog(t, limit, 2, 5000)
	const last = "Fatal Python error: the engine's last words"
	line := []byte(strings.Repeat("z", 999) + "\n")
	l.mu.Lock()
	for i := 0; i < 1500; i++ {
		w.Write(line)
	}
	l.beforeShorten = func() {
		l.beforeShorten = nil
		w.Write([]byte(last + "\n"))
	}
	l.mu.Unlock()
	l.Poll()
	l.mu.Lock()
	hooked := l.beforeShorten == nil
	l.mu.Unlock()
	if !hooked {
		t.Fatal("the log was not rotated")
	}
	l.Poll() // the last words came after the read that rotated
	if got := l.LastLine(); got != last {
		t.Errorf("the last line in memory: %.80q", got)
	}
	var all []byte
	for _, p := range []string{path + ".2", path + ".1", path} {
		b, _ := os.ReadFile(p)
		all = append(all, b...)
	}
	if n := bytes.Count(all, []byte(last)); n != 1 {
		t.Errorf("the last words are %d times in the log files, want once: the live file ends %q", n, all[max(0, len(all)-60):])
	}
	for _, s := range logSizes(t, path, 2) {
		if s > limit+int64(len(line)) {
			t.Errorf("a log file is %d bytes for a %d byte limit: %v", s, limit, logSizes(t, path, 2))
		}
	}
}

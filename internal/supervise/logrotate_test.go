package supervise

import (
	"bytes"
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

// TestLogOfAFastEngineStaysWithinItsSize: an engine writes straight into
// its log file, far faster than gantry reads it (40 MiB before gantry
// looks once). No file — the live one or a rotated copy — passes the
// limit by more than a line: a rotated copy keeps the newest output, and
// gantry keeps the newest lines in memory, with a mark where it skipped.
func TestLogOfAFastEngineStaysWithinItsSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	const limit = 1 << 20
	l, err := NewLog(path, limit, 2, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer() // the engine's own handle
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
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
	rotated, _ := os.ReadFile(path + ".1")
	if !bytes.HasSuffix(rotated, []byte("the last line\n")) || !bytes.HasPrefix(rotated, []byte("[gantry]")) {
		t.Errorf("the rotated copy does not keep the newest output after a mark: starts %.60q, ends %.40q", rotated, rotated[max(0, len(rotated)-40):])
	}
}

// TestLogRotatesAtTheSizeWithoutAPoll: the engine's writes wake gantry
// (inotify), so the log is rotated when it passes its size — not when the
// next poll comes (every 250 ms: a fast engine wrote 150 MB into a 20 MiB
// log in between). Nothing here polls: only the writes can cause the
// rotation the engine waits for.
func TestLogRotatesAtTheSizeWithoutAPoll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	const limit = 256 << 10
	l, err := NewLog(path, limit, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
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

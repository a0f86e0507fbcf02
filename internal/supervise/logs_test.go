package supervise

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogRotatesAndKeepsTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "sim", "m.log")
	l, err := NewLog(path, 1000, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 100; i++ {
		fmt.Fprintf(l, "line %03d %s\n", i, strings.Repeat("x", 40))
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if st.Size() > 1100 { // rotated when past the limit: by at most one write
			t.Errorf("%s is %d bytes, over the limit", p, st.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("kept more than 2 old files")
	}
	tail := l.Tail(10)
	if len(tail) != 5 || !strings.HasPrefix(tail[4], "line 099") || !strings.HasPrefix(tail[0], "line 095") {
		t.Errorf("tail %q", tail)
	}
	if !strings.HasPrefix(l.LastLine(), "line 099") {
		t.Errorf("last line %q", l.LastLine())
	}
}

func TestLogJoinsPartialWritesAndFollows(t *testing.T) {
	l, err := NewLog(filepath.Join(t.TempDir(), "m.log"), 0, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("hel"))
	l.Write([]byte("lo\r\nwor"))
	old, ch, stop := l.Follow(5)
	defer stop()
	l.Write([]byte("ld\n"))
	if len(old) != 1 || old[0] != "hello" {
		t.Errorf("old %q", old)
	}
	if got := <-ch; got != "world" {
		t.Errorf("followed %q", got)
	}
}

// TestLogBoundsWhatItKeeps: an engine printing megabyte lines costs gantry
// at most MaxLine per line and MaxTail in all; the file keeps them whole.
func TestLogBoundsWhatItKeeps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	l, err := NewLog(path, 0, 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, _ := l.Writer()
	big := strings.Repeat("x", 1<<20)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(w, "%d %s\n", i, big)
	}
	w.Close()
	tail := l.Tail(500)
	total := 0
	for _, s := range tail {
		total += len(s)
		if strings.HasPrefix(s, "[gantry] … ") && strings.Contains(s, "skipped") {
			continue // what came at once beyond MaxTail, marked
		}
		if len(s) > MaxLine+64 || !strings.Contains(s, "bytes cut]") {
			t.Fatalf("a line of %d bytes kept: %.80q…", len(s), s)
		}
	}
	if total > MaxTail {
		t.Errorf("%d bytes kept in memory, over %d", total, MaxTail)
	}
	if !strings.HasPrefix(tail[len(tail)-1], "99 ") {
		t.Errorf("the newest line is not kept: %.20q", tail[len(tail)-1])
	}
	if st, _ := os.Stat(path); st.Size() < 100<<20 {
		t.Errorf("the file lost bytes: %d", st.Size())
	}
}

// TestLogMakesControlCharactersVisible: a \r in an engine's line would split
// one server-sent event into two in an EventSource client, or overwrite a
// terminal line; colours are dropped.
func TestLogMakesControlCharactersVisible(t *testing.T) {
	l, err := NewLog(filepath.Join(t.TempDir(), "m.log"), 0, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("Loading: 10%\rLoading: 90%\x07\n\x1b[32mINFO\x1b[0m ready\ttab\n"))
	got := l.Tail(2)
	if len(got) != 2 || got[0] != `Loading: 10%\rLoading: 90%\x07` || got[1] != "INFO ready\ttab" {
		t.Errorf("got %q", got)
	}
}

// TestLogRefusesSymlinks: a symbolic link where the log should be is never
// written through, and rotation never truncates its target.
func TestLogRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	os.WriteFile(target, []byte("keep me\n"), 0o644)
	link := filepath.Join(dir, "m.log")
	os.Symlink(target, link)
	if _, err := NewLog(link, 10, 1, 5); err == nil {
		t.Fatal("a log was opened through a symbolic link")
	}
	// A link planted at the rotation target is replaced, not followed.
	path := filepath.Join(dir, "n.log")
	os.Symlink(target, path+".1")
	l, err := NewLog(path, 100, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 20; i++ {
		fmt.Fprintf(l, "line %d of the engine\n", i)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me\n" {
		t.Errorf("the link's target was changed: %q", b)
	}
}

// TestLogHookSeesBarRedraws: a tqdm bar redrawn with \r, without a
// newline yet, reaches the hook segment by segment as it arrives.
func TestLogHookSeesBarRedraws(t *testing.T) {
	l, err := NewLog(filepath.Join(t.TempDir(), "m.log"), 0, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got []string
	remove := l.AddHook(func(s string) { got = append(got, s) })
	l.Write([]byte("Loading: 10%|█ | 1/10\rLoading: 20%|"))
	l.Write([]byte("██ | 2/10\rLoad"))
	if strings.Join(got, ";") != "Loading: 10%|█ | 1/10;Loading: 20%|██ | 2/10" {
		t.Fatalf("before the newline: %q", got)
	}
	l.Write([]byte("ed.\ndone\n"))
	if strings.Join(got, ";") != "Loading: 10%|█ | 1/10;Loading: 20%|██ | 2/10;Loaded.;done" {
		t.Errorf("%q", got)
	}
	remove()
	l.Write([]byte("after\n"))
	if len(got) != 4 {
		t.Errorf("a removed hook was called: %q", got)
	}
}

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

func TestRedactArgv(t *testing.T) {
	got := redactArgv([]string{"srv", "--api-key", "sk-1", "--hf-token=abc", "--port", "1"})
	want := "srv --api-key *** --hf-token=*** --port 1"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q", got)
	}
}

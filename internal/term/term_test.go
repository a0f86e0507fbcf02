package term

import (
	"testing"
	"time"
)

func TestPTYRawAndSize(t *testing.T) {
	pty, tty, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	defer tty.Close()
	if !IsTerminal(int(tty.Fd())) {
		t.Fatal("the pty's tty is no terminal")
	}
	if err := SetSize(pty, 100, 30); err != nil {
		t.Fatal(err)
	}
	if w, h, err := Size(int(tty.Fd())); err != nil || w != 100 || h != 30 {
		t.Errorf("size %d×%d %v", w, h, err)
	}
	restore, err := MakeRaw(int(tty.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	// Raw: a key arrives at once, without a newline, and Ctrl-C is a byte.
	// (Cooked, the read would wait for a newline: the deadline ends it.)
	pty.Write([]byte{'q', 3})
	tty.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 8)
	for len(got) < 2 {
		n, err := tty.Read(buf)
		if err != nil {
			t.Fatalf("raw read after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "q\x03" {
		t.Errorf("raw read %q", got)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
}

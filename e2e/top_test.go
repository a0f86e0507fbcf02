package e2e

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/term"
)

// TestTopUnderATerminal drives `gantry top` in a pseudo-terminal: it takes
// the screen, shows the models and a model's load, lists a request as it
// finishes, and on q gives the terminal back and exits 0.
func TestTopUnderATerminal(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
models:
  chat: {engine: sim, memory: 8GiB, mode: always-on, args: [--tokens, 12, --model, e2e-top-chat]}
  slow: {engine: sim, memory: 4GiB, args: [--flavor, vllm, --progress, --load-time, 4s, --model, e2e-top-slow]}
`)
	d.waitState("chat", "ready", 20*time.Second)
	pty, tty, err := term.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	if err := term.SetSize(pty, 140, 40); err != nil {
		t.Fatal(err)
	}
	cmd := d.command("top")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := pty.Read(b)
			mu.Lock()
			screen.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func(what string, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			ok := strings.Contains(screen.String(), what)
			mu.Unlock()
			if ok {
				return
			}
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("top never showed %q; the screen:\n%s", what, screen.String())
	}
	seen("\x1b[?1049h", 10*time.Second) // the alternate screen
	seen("gantry top", 10*time.Second)
	seen("chat", 5*time.Second)
	// A load, with its phase from the engine's own lines.
	go d.gantry("start", "slow")
	seen("loading weights", 15*time.Second)
	// A request, as it finishes.
	c := d.oai("")
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("chat", "hi")); err != nil {
		t.Fatal(err)
	}
	seen("LAST REQUESTS", 10*time.Second)
	seen("/12 tok", 5*time.Second)

	pty.Write([]byte("q"))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("top exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("top did not quit on q")
	}
	seen("\x1b[?1049l", 2*time.Second) // the screen given back
}

// TestTopPlainWithoutATerminal: with stdout not a terminal, top prints a
// line per change and per request, and Ctrl-C (SIGINT) ends it cleanly.
func TestTopPlainWithoutATerminal(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
models:
  m: {engine: sim, memory: 2GiB, args: [--tokens, 5, --model, e2e-top-plain]}
`)
	cmd := d.command("top")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once top follows, a request's record reaches it: retry until one does.
	c := d.oai("")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "request ") {
		if time.Now().After(deadline) {
			t.Fatalf("no request line:\n%s", out.String())
		}
		if _, err := c.Chat.Completions.New(context.Background(), chatParams("m", "hi")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "state") || strings.Contains(out.String(), "\x1b[") {
		t.Errorf("plain output:\n%q", out.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("top after SIGINT: %v\n%s", err, out.String())
	}
}

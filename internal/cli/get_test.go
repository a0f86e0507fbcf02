package cli

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/hub/hubtest"
	"github.com/gantryhq/gantry/internal/term"
)

// TestGetProgressViews: on a terminal get draws a bar per file and the
// total (redrawn in place); on a pipe it prints a line per step; with
// --json one event per line.
func TestGetProgressViews(t *testing.T) {
	s, err := hubtest.New(hubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := make([]byte, 6<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if _, err := s.Push("org/blob", hubtest.Bytes("weights.bin", b), hubtest.Bytes("config.json", []byte(`{"model_type":"llama"}`))); err != nil {
		t.Fatal(err)
	}
	s.Throttle(4 << 20) // long enough for a few redraws
	t.Setenv("HF_ENDPOINT", s.URL)
	t.Setenv("HF_TOKEN", "")
	cfg := filepath.Join(t.TempDir(), "gantry.yaml")
	os.WriteFile(cfg, []byte("memory: {total: 16GiB, reserve: 0GiB}\nmodels:\n  a: {engine: sim, memory: 1GiB}\n"), 0o644)
	t.Setenv("GANTRY_CONFIG", cfg)
	get := func(stderr io.Writer, extra ...string) string {
		var out bytes.Buffer
		args := append([]string{"get", "org/blob", "--root", t.TempDir(), "--include", "*.bin", "--server", "http://127.0.0.1:1"}, extra...)
		if err := Run(context.Background(), args, &out, stderr); err != nil {
			t.Fatalf("get %v: %v", extra, err)
		}
		return out.String()
	}
	pty, tty, err := term.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	drawn := make(chan string)
	go func() {
		var all bytes.Buffer
		io.Copy(&all, pty)
		drawn <- all.String()
	}()
	get(tty)
	tty.Close()
	screen := <-drawn
	pty.Close()
	for _, want := range []string{"[", "] weights.bin ", "total ", "/s, ", "\033[2A\033[J"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the terminal shows no %q:\n%q", want, screen)
		}
	}
	var pipe bytes.Buffer
	get(&pipe)
	for _, want := range []string{"fetching weights.bin (6MiB)\n", "verified weights.bin\n", "plan: 2 of 2 files to fetch"} {
		if !strings.Contains(pipe.String(), want) || strings.Contains(pipe.String(), "\033[") {
			t.Errorf("the pipe shows no %q (or a terminal code):\n%s", want, pipe.String())
		}
	}
	js := get(io.Discard, "--json")
	for _, want := range []string{`"type":"fit"`, `"type":"plan"`, `"type":"progress"`, `"type":"verified"`, `"type":"done"`} {
		if !strings.Contains(js, want) {
			t.Errorf("--json has no %s:\n%s", want, js)
		}
	}
}

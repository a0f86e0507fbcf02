package supervise

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Log is an engine's output: a size-rotated file on disk plus the last lines
// in memory for status, diagnosis and followers. It is an io.Writer that
// the engine's stdout and stderr both go to.
type Log struct {
	path     string
	maxBytes int64
	keep     int

	mu      sync.Mutex
	f       *os.File
	size    int64
	partial []byte
	lines   []string // ring of the last cap(lines) lines
	next    int
	full    bool
	subs    map[chan string]struct{}
	redact  *strings.Replacer
}

// SetRedactor makes the log replace secrets in every line before it is
// kept or written (nil: none).
func (l *Log) SetRedactor(r *strings.Replacer) {
	l.mu.Lock()
	l.redact = r
	l.mu.Unlock()
}

// NewLog opens (appending) the log at path, rotating it when it passes
// maxBytes and keeping keep old files (path.1 … path.keep). It keeps the last
// memLines lines in memory.
func NewLog(path string, maxBytes int64, keep, memLines int) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log folder: %w", err)
	}
	l := &Log{path: path, maxBytes: maxBytes, keep: keep, lines: make([]string, memLines), subs: map[chan string]struct{}{}}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Path is the log file's path.
func (l *Log) Path() string { return l.path }

// Write implements io.Writer. Output is handled line by line, so a secret
// is replaced even when the engine's writes split it. Write errors on disk
// are not returned: a full disk must not kill the engine through a broken
// pipe.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data := p
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			l.partial = append(l.partial, data...)
			if len(l.partial) > 64<<10 { // a runaway line: cut it
				l.addLine(string(l.partial))
				l.partial = l.partial[:0]
			}
			break
		}
		line := data[:i]
		if len(l.partial) > 0 {
			line = append(l.partial, line...)
			l.partial = l.partial[:0]
		}
		l.addLine(string(bytes.TrimRight(line, "\r")))
		data = data[i+1:]
	}
	return len(p), nil
}

// Mark writes a line of gantry's own into the log, so that the file tells
// when gantry started and stopped the engine.
func (l *Log) Mark(format string, args ...any) {
	fmt.Fprintf(l, "[gantry] "+format+"\n", args...)
}

func (l *Log) addLine(s string) {
	if l.redact != nil {
		s = l.redact.Replace(s)
	}
	l.writeFile(s)
	l.lines[l.next] = s
	l.next = (l.next + 1) % len(l.lines)
	if l.next == 0 {
		l.full = true
	}
	for ch := range l.subs {
		select {
		case ch <- s:
		default: // a slow follower loses lines rather than stalling the engine
		}
	}
}

// writeFile appends one line to the file, rotating it first when full.
func (l *Log) writeFile(s string) {
	if l.f == nil {
		return
	}
	if l.maxBytes > 0 && l.size+int64(len(s))+1 > l.maxBytes && l.size > 0 {
		l.rotate()
		if l.f == nil {
			return
		}
	}
	n, _ := l.f.WriteString(s + "\n")
	l.size += int64(n)
}

func (l *Log) rotate() {
	l.f.Close()
	l.f = nil
	for i := l.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1)) //nolint:errcheck // may not exist
	}
	if l.keep > 0 {
		os.Rename(l.path, l.path+".1") //nolint:errcheck
	} else {
		os.Remove(l.path) //nolint:errcheck
	}
	if err := l.open(); err != nil {
		l.f = nil
	}
}

// Tail returns up to n of the last lines, oldest first.
func (l *Log) Tail(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tail(n)
}

func (l *Log) tail(n int) []string {
	count := l.next
	if l.full {
		count = len(l.lines)
	}
	if n > count || n < 0 {
		n = count
	}
	out := make([]string, 0, n)
	for i := count - n; i < count; i++ {
		idx := i
		if l.full {
			idx = (l.next + i) % len(l.lines)
		}
		out = append(out, l.lines[idx])
	}
	return out
}

// LastLine is the last non-empty line, "" when there is none.
func (l *Log) LastLine() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tail(8)
	for i := len(t) - 1; i >= 0; i-- {
		if s := trimmed(t[i]); s != "" {
			return s
		}
	}
	return ""
}

func trimmed(s string) string {
	s = string(bytes.TrimSpace([]byte(s)))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Follow returns the last n lines and a channel of the lines written after
// them, atomically, so no line is missed or repeated. Call the returned
// function to stop following.
func (l *Log) Follow(n int) ([]string, <-chan string, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan string, 256)
	l.subs[ch] = struct{}{}
	return l.tail(n), ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs, ch)
	}
}

// Close closes the file; in-memory lines stay readable.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

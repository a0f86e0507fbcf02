package supervise

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gantryhq/gantry/internal/diagnose"
)

// Log is an engine's output. The engine writes straight into the file —
// not through a pipe to gantry, so an engine outlives a gantry that dies
// and is adopted by the next one — and gantry reads the file back (Poll)
// into the last lines it keeps in memory for status, diagnosis and
// followers, with secrets replaced. The file is rotated by size (copy,
// then truncate: the engine's append-only handle stays valid).
type Log struct {
	path     string
	maxBytes int64
	keep     int

	mu      sync.Mutex
	f       *os.File // gantry's own append handle, for its marks
	off     int64    // how far Poll has read
	partial []byte
	lines   []string // ring of the last cap(lines) lines
	next    int
	full    bool
	subs    map[chan string]struct{}
	redact  *strings.Replacer
}

// NewLog opens (appending) the log at path, rotating it when it passes
// maxBytes and keeping keep old files (path.1 … path.keep). It keeps the last
// memLines lines in memory and starts reading at the file's current end.
func NewLog(path string, maxBytes int64, keep, memLines int) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Log{path: path, maxBytes: maxBytes, keep: keep, f: f, off: st.Size(),
		lines: make([]string, memLines), subs: map[chan string]struct{}{}}, nil
}

// Path is the log file's path.
func (l *Log) Path() string { return l.path }

// SetRedactor makes the log replace secrets in every line it keeps or
// shows (nil: none).
func (l *Log) SetRedactor(r *strings.Replacer) {
	l.mu.Lock()
	l.redact = r
	l.mu.Unlock()
}

// Writer opens a new append-only handle for an engine's stdout and stderr.
func (l *Log) Writer() (*os.File, error) {
	return os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// Write implements io.Writer for gantry's own writers (docker rm and
// stop): it appends to the file and reads it back at once.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	if l.f != nil {
		l.f.Write(p) //nolint:errcheck // a full disk must not stop gantry
	}
	l.mu.Unlock()
	l.Poll()
	return len(p), nil
}

// Mark writes a line of gantry's own into the log, so that the file tells
// when gantry started and stopped the engine.
func (l *Log) Mark(format string, args ...any) {
	fmt.Fprintf(l, "[gantry] "+format+"\n", args...)
}

// Poll reads what was written since the last call, keeps its lines and
// hands them to followers; it rotates the file when it is too large. It
// reports whether there was anything new.
func (l *Log) Poll() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, err := os.Stat(l.path)
	if err != nil {
		return false
	}
	if st.Size() < l.off { // truncated (rotated by us, or by hand)
		l.off = 0
	}
	if st.Size() == l.off {
		return false
	}
	f, err := os.Open(l.path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, min(st.Size()-l.off, 4<<20))
	n, _ := f.ReadAt(buf, l.off)
	if n <= 0 {
		return false
	}
	l.off += int64(n)
	l.feed(buf[:n])
	if l.maxBytes > 0 && l.off > l.maxBytes {
		l.rotate()
	}
	return true
}

func (l *Log) feed(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			l.partial = append(l.partial, data...)
			if len(l.partial) > 64<<10 { // a runaway line: cut it
				l.addLine(string(l.partial))
				l.partial = l.partial[:0]
			}
			return
		}
		line := data[:i]
		if len(l.partial) > 0 {
			line = append(l.partial, line...)
			l.partial = l.partial[:0]
		}
		l.addLine(string(bytes.TrimRight(line, "\r")))
		data = data[i+1:]
	}
}

func (l *Log) addLine(s string) {
	if l.redact != nil {
		s = l.redact.Replace(s)
	}
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

// rotate copies the file to path.1 (shifting older ones) and truncates it;
// the engine keeps appending through its own handle.
func (l *Log) rotate() {
	for i := l.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1)) //nolint:errcheck // may not exist
	}
	if l.keep > 0 {
		if err := copyFile(l.path, l.path+".1"); err != nil {
			return
		}
	}
	if err := os.Truncate(l.path, 0); err == nil {
		l.off = 0
	}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// Tail returns up to n of the last lines, oldest first.
func (l *Log) Tail(n int) []string {
	l.Poll()
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

// Headline is the most informative of the last lines (diagnose.Headline):
// a traceback's exception, else the last line reporting an error, never a
// mark of gantry's own.
func (l *Log) Headline() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return diagnose.Headline(l.tail(300))
}

// Follow returns the last n lines and a channel of the lines read after
// them, atomically, so no line is missed or repeated. Call the returned
// function to stop following.
func (l *Log) Follow(n int) ([]string, <-chan string, func()) {
	l.Poll()
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

// Close closes gantry's handle; in-memory lines stay readable.
func (l *Log) Close() error {
	l.Poll()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

package supervise

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/gantryhq/gantry/internal/diagnose"
)

// MaxLine is the longest line kept in memory; the rest of a longer one is
// cut with a marker (the file keeps it whole). MaxTail bounds the bytes of
// all the lines kept. An engine printing megabyte lines must not take
// gantry's memory, or a client's asking for the tail.
const (
	MaxLine = 64 << 10
	MaxTail = 4 << 20
)

// Log is an engine's output. The engine writes straight into the file —
// not through a pipe to gantry, so an engine outlives a gantry that dies
// and is adopted by the next one — and gantry reads the file back (Poll)
// into the last lines it keeps in memory for status, diagnosis and
// followers, with secrets replaced and control characters made visible.
// The file is rotated by size (logrotate.go): its older bytes are copied
// out and then cut from its head, so the engine's append-only handle stays
// valid and what it writes meanwhile stays in the file. Log files are
// never opened through a symbolic link: one planted in the logs folder
// cannot make gantry write or truncate another file.
type Log struct {
	path     string
	maxBytes int64
	keep     int

	mu      sync.Mutex
	f       *os.File // gantry's own append handle, for its marks
	off     int64    // how far Poll has read
	partial []byte   // the start of a line not yet ended, at most MaxLine
	cut     int      // bytes of that line dropped beyond MaxLine
	lines   []string // ring of the last lines
	head, n int      // the oldest line's index, and how many there are
	bytes   int      // of the n lines
	subs    map[chan string]struct{}
	redact  *strings.Replacer
	// hook sees every segment of raw output, split at \r as well as \n
	// (tqdm redraws a bar with \r): load progress is read from it.
	hooks  map[int]func(segment string)
	hookID int
	hooked int // bytes of partial already given to hook
	// unwatch stops the wake-ups of the engine's writes (logwatch.go).
	unwatch func()
	// noCollapse: the file system cannot cut a file's head, so rotation
	// copies and truncates (logrotate.go).
	noCollapse bool
	// beforeShorten, when set (tests), runs in a rotation between the
	// copy and the cut: the moment an engine's write must not be lost in.
	beforeShorten func()
}

// openFlags open a log file for appending, refusing a symbolic link.
const openFlags = os.O_CREATE | os.O_WRONLY | os.O_APPEND | syscall.O_NOFOLLOW

// NewLog opens (appending) the log at path, rotating it when it passes
// maxBytes and keeping keep old files (path.1 … path.keep). It keeps the last
// memLines lines in memory and starts reading at the file's current end.
func NewLog(path string, maxBytes int64, keep, memLines int) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log folder: %w", err)
	}
	f, err := os.OpenFile(path, openFlags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w (a symbolic link is refused)", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &Log{path: path, maxBytes: maxBytes, keep: keep, f: f, off: st.Size(),
		lines: make([]string, memLines), subs: map[chan string]struct{}{}, unwatch: func() {}}
	if maxBytes > 0 {
		l.unwatch = watchLog(l)
	}
	return l, nil
}

// written is the kernel's word that the engine wrote: a log past its
// size is read and rotated now, not at the next poll.
func (l *Log) written() {
	if st, err := os.Lstat(l.path); err == nil && st.Size() > l.maxBytes {
		l.Poll()
	}
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

// AddHook makes the log call f with every segment of the engine's output
// (the text between carriage returns and newlines, unredacted), as it is
// read, until remove is called; f runs with the log locked and must be
// quick.
func (l *Log) AddHook(f func(segment string)) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hooks == nil {
		l.hooks = map[int]func(string){}
	}
	l.hookID++
	id := l.hookID
	l.hooks[id] = f
	return func() {
		l.mu.Lock()
		delete(l.hooks, id)
		l.mu.Unlock()
	}
}

// callHooks gives one segment to every hook.
func (l *Log) callHooks(segment string) {
	for _, f := range l.hooks {
		f(segment)
	}
}

// Writer opens a new append-only handle for an engine's stdout and stderr.
func (l *Log) Writer() (*os.File, error) {
	return os.OpenFile(l.path, openFlags, 0o644)
}

// Write implements io.Writer for gantry's own writers (a container's
// output, docker rm and stop): it appends to the file — rotated first when
// p would take it past its size — and reads it back at once.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	if l.f != nil {
		if l.wouldPass(len(p)) {
			l.pollLocked() // rotates when the file is already past its size
			if l.wouldPass(len(p)) {
				l.rotate()
			}
		}
		l.f.Write(p) //nolint:errcheck // a full disk must not stop gantry
	}
	l.mu.Unlock()
	l.Poll()
	return len(p), nil
}

// wouldPass reports whether n more bytes take the file past its size.
func (l *Log) wouldPass(n int) bool {
	st, err := l.f.Stat()
	return err == nil && l.maxBytes > 0 && st.Size() > 0 && st.Size()+int64(n) > l.maxBytes
}

// Mark writes a line of gantry's own into the log, so that the file tells
// when gantry started and stopped the engine.
func (l *Log) Mark(format string, args ...any) {
	fmt.Fprintf(l, "[gantry] "+format+"\n", args...)
}

// Poll reads what was written since the last call, keeps its lines and
// hands them to followers; it rotates the file when it is past its size.
// It reports whether there was anything new.
func (l *Log) Poll() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pollLocked()
}

func (l *Log) pollLocked() bool {
	st, err := os.Lstat(l.path)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	size := st.Size()
	if size < l.off { // truncated (by hand, or by another gantry's rotation)
		l.off = 0
	}
	if size == l.off {
		return false
	}
	f, err := os.OpenFile(l.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if !l.readTo(f, size) {
		return false
	}
	if l.maxBytes > 0 && size > l.maxBytes {
		l.rotate()
	}
	return true
}

// readTo reads f from where memory stopped up to end into memory. When
// more than memory keeps came at once, the newest lines are the ones
// status and diagnosis need: it skips to them (keeping half of what memory
// holds, so that the mark of the gap stays in it too).
func (l *Log) readTo(f *os.File, end int64) bool {
	if skip := end - l.off - MaxTail/2; skip > MaxTail/2 {
		l.partial, l.cut, l.hooked = l.partial[:0], 0, 0
		l.addLine(fmt.Sprintf("[gantry] … %s of output skipped here: the engine wrote faster than gantry reads (the file has it until it is rotated)", sizeWords(skip)))
		l.off += skip
		l.dropToLineStart(f)
	}
	if end <= l.off {
		return false
	}
	buf := make([]byte, min(end-l.off, 4<<20))
	n, _ := f.ReadAt(buf, l.off)
	if n <= 0 {
		return false
	}
	l.off += int64(n)
	l.feed(buf[:n])
	return true
}

// dropToLineStart moves the read offset past the rest of the line it
// landed in, so that memory does not start with half a line.
func (l *Log) dropToLineStart(f *os.File) {
	buf := make([]byte, MaxLine)
	n, _ := f.ReadAt(buf, l.off)
	if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
		l.off += int64(i + 1)
	}
}

func sizeWords(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

func (l *Log) feed(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		part := data
		if i >= 0 {
			part = data[:i]
		}
		room := MaxLine - len(l.partial)
		if len(part) > room {
			l.cut += len(part) - room
			part = part[:room]
		}
		l.partial = append(l.partial, part...)
		if len(l.hooks) > 0 {
			l.hookSegments(i >= 0)
		}
		if i < 0 {
			return
		}
		line := string(bytes.TrimRight(l.partial, "\r"))
		if l.cut > 0 {
			line += fmt.Sprintf(" … [%d bytes cut]", l.cut)
		}
		l.partial, l.cut, l.hooked = l.partial[:0], 0, 0
		l.addLine(line)
		data = data[i+1:]
	}
}

// hookSegments gives the hook the segments of partial that a \r (or, with
// ended, the line's end) completes and it has not seen.
func (l *Log) hookSegments(ended bool) {
	for {
		rest := l.partial[l.hooked:]
		j := bytes.IndexByte(rest, '\r')
		if j < 0 {
			if ended && len(rest) > 0 {
				l.callHooks(string(rest))
			}
			return
		}
		if j > 0 {
			l.callHooks(string(rest[:j]))
		}
		l.hooked += j + 1
	}
}

// Visible makes control characters visible (\r, \x1b, …) and drops the
// terminal's colour and cursor sequences: a line gantry shows, streams as
// server-sent events or prints must stay one line of text.
func Visible(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0x1b && i+1 < len(s) && s[i+1] == '[':
			// CSI: ESC [ parameters intermediates final byte (@ to ~).
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
		case c == '\r':
			b.WriteString(`\r`)
		case (c < 0x20 && c != '\t') || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (l *Log) addLine(s string) {
	if l.redact != nil {
		s = l.redact.Replace(s)
	}
	s = Visible(s)
	if l.n == len(l.lines) {
		l.dropOldest()
	}
	l.lines[(l.head+l.n)%len(l.lines)] = s
	l.n++
	l.bytes += len(s)
	for l.bytes > MaxTail && l.n > 1 {
		l.dropOldest()
	}
	for ch := range l.subs {
		select {
		case ch <- s:
		default: // a slow follower loses lines rather than stalling the engine
		}
	}
}

func (l *Log) dropOldest() {
	l.bytes -= len(l.lines[l.head])
	l.lines[l.head] = ""
	l.head = (l.head + 1) % len(l.lines)
	l.n--
}

// catchUp polls until the file is read to its end (bounded: Poll reads
// at most 4 MiB at a time).
func (l *Log) catchUp() {
	for i := 0; i < 256 && l.Poll(); i++ {
	}
}

// Tail returns up to n of the last lines, oldest first.
func (l *Log) Tail(n int) []string {
	l.catchUp()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tail(n)
}

func (l *Log) tail(n int) []string {
	if n > l.n || n < 0 {
		n = l.n
	}
	out := make([]string, 0, n)
	for i := l.n - n; i < l.n; i++ {
		out = append(out, l.lines[(l.head+i)%len(l.lines)])
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
	l.catchUp()
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
	l.unwatch()
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

package diagnose

import (
	"path"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/lazyre"
)

// Exception is the exception a Python traceback ends with, and the frame
// that raised it: what a failing engine's log means, whatever its wording.
type Exception struct {
	// Type is the exception's class as printed, e.g. "ValueError" or
	// "torch.OutOfMemoryError" (the qualified name when Python gives it).
	Type string `json:"type"`
	// Message is what follows "Type: ".
	Message string `json:"message,omitempty"`
	// File, Line and Func are the last frame: where it was raised.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Func string `json:"func,omitempty"`
}

// Module is the raising frame's module path inside its package tree, e.g.
// "vllm/v1/core/kv_cache_utils.py" for ".../site-packages/vllm/v1/…".
func (e *Exception) Module() string {
	f := strings.ReplaceAll(e.File, `\`, "/")
	for _, root := range []string{"/site-packages/", "/dist-packages/", "/python/"} {
		if i := strings.LastIndex(f, root); i >= 0 {
			return f[i+len(root):]
		}
	}
	return path.Base(f)
}

// String is the exception and where it was raised, in one line.
func (e *Exception) String() string {
	s := e.Type
	if e.Message != "" {
		msg := e.Message
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		s += ": " + msg
	}
	if e.File != "" {
		s += " (raised in " + e.Module() + ":" + strconv.Itoa(e.Line)
		if e.Func != "" {
			s += ", in " + e.Func
		}
		s += ")"
	}
	return s
}

var (
	// logPrefix is what engines and launchers put before each line of a
	// traceback: "(EngineCore_DP0 pid=93) ERROR 09-03 11:03:37 [core.py:712] ",
	// "[rank0]: ", "(VllmWorkerProcess pid=235) ", "[vllm]: ", a timestamp.
	logPrefix = lazyre.New(`^(?:\s*(?:\([\w.-]+ pid=\d+\)|\[[\w .:-]+\]:?|\d{4}-\d\d-\d\dT[\d:.]+Z?|(?:ERROR|WARNING|INFO|DEBUG) \d\d-\d\d [\d:]+ \[[\w.]+:\d+\]))+\s?`)
	frameRE   = lazyre.New(`^\s*File "([^"]+)", line (\d+)(?:, in (.+))?$`)
	// An exception line: a (dotted) class name, a colon and the message, or
	// the class name alone. Builtin and library exceptions end in Error,
	// Exception, Exit or Interrupt; Rust-backed libraries raise Exception.
	excRE = lazyre.New(`^([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*(?:Error|Exception|Exit|Interrupt|Warning))(?::\s*(.*))?$`)
)

// stripPrefix removes an engine's log prefix from a line.
func stripPrefix(l string) string {
	return logPrefix.ReplaceAllString(strings.TrimRight(l, "\r"), "")
}

// LastException finds the exception of the last Python traceback in lines
// (oldest first), nil when there is none. A chained traceback ("During
// handling of the above exception…") yields its last exception: the one
// that ended the process.
func LastException(lines []string) *Exception {
	start := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "Traceback (most recent call last)") {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	var exc *Exception
	var frame [3]string
	for _, raw := range lines[start+1:] {
		l := stripPrefix(raw)
		if m := frameRE.FindStringSubmatch(l); m != nil {
			frame = [3]string{m[1], m[2], m[3]}
			continue
		}
		t := strings.TrimSpace(l)
		if m := excRE.FindStringSubmatch(t); m != nil && t == strings.TrimLeft(l, " ") {
			// Unindented, after the frames: the exception itself.
			n, _ := strconv.Atoi(frame[1])
			exc = &Exception{Type: m[1], Message: strings.TrimSpace(m[2]), File: frame[0], Line: n, Func: frame[2]}
			break
		}
	}
	return exc
}

// errorLine marks a line that reports a failure, for logs without a
// traceback (llama.cpp, Ollama, Go and C++ programs).
var errorLine = lazyre.New(`(?i)\b(error|failed|fatal|panic|exception|terminated|cannot|could not|unable to)\b`)

// Headline is the most informative line of an engine's log tail: for a
// Python traceback, its exception and the frame that raised it; else the
// last line that reports an error; else the last line. gantry's own marks
// ("[gantry] …") are never it: they quote the argv, not the engine.
func Headline(lines []string) string {
	if e := LastException(lines); e != nil {
		return trim(e.String())
	}
	last := ""
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "[gantry]") {
			continue
		}
		if last == "" {
			last = l
		}
		if errorLine.MatchString(l) {
			return trim(l)
		}
	}
	return trim(last)
}

func trim(s string) string {
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

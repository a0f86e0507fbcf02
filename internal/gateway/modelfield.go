package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds nesting so that a hostile body cannot exhaust the stack.
const maxDepth = 512

// ErrAmbiguousModel is a body whose top level names the model more than
// once, or in another case or an escaped form ("Model", "\u006dodel"):
// JSON parsers disagree on such bodies (Python's takes the last exact
// "model", Go's encoding/json any case), so gantry and the engine could
// serve different models — one outside the memory budget.
var ErrAmbiguousModel = errors.New(`ambiguous model: the body names the model more than once, or as a key other than exactly "model": send one "model" key`)

// ModelField finds the top-level "model" string of a JSON object without
// decoding the body, and checks the whole body's syntax on the way (so a
// malformed body gets gantry's 400, not an engine's). It returns the model
// name and the byte range of its JSON string token, quotes included, so the
// caller can replace the value in place. found is false when the object
// has no "model" key. One reading only: a body with more than one key
// that means "model" to some parser is refused with ErrAmbiguousModel.
func ModelField(b []byte) (model string, start, end int, found bool, err error) {
	f, err := topFields(b)
	return f.model, f.start, f.end, f.found, err
}

// fields are what the gateway reads of a body's top level: the model (its
// value and byte range) and whether the request asks to stream.
type fields struct {
	model      string
	start, end int
	found      bool
	stream     bool
	// streamOptions: the body sets stream_options itself (then gantry
	// does not ask the engine for usage on its behalf).
	streamOptions bool
}

// topFields is ModelField, and "stream": true seen on the way.
func topFields(b []byte) (f fields, err error) {
	var model string
	var start, end int
	var found bool
	s := scanner{b: b}
	s.ws()
	if !s.eat('{') {
		return f, s.fail("the body must be a JSON object")
	}
	s.ws()
	if !s.eat('}') {
		for {
			s.ws()
			ks, ke, kesc, err := s.str()
			if err != nil {
				return f, err
			}
			s.ws()
			if !s.eat(':') {
				return f, s.fail("expected ':' after an object key")
			}
			s.ws()
			exact, fold := modelKey(b[ks:ke], kesc)
			if fold && (!exact || found) {
				return f, ErrAmbiguousModel
			}
			if exact {
				if s.i >= len(b) || b[s.i] != '"' {
					return f, s.fail(`"model" must be a string`)
				}
				vs, ve, vesc, err := s.str()
				if err != nil {
					return f, err
				}
				start, end, found = vs, ve, true
				model = string(b[vs+1 : ve-1])
				if vesc || !utf8.ValidString(model) {
					// Rare: let encoding/json decode escapes and replace
					// invalid UTF-8, exactly as the engines will see it.
					if err := json.Unmarshal(b[vs:ve], &model); err != nil {
						return f, fmt.Errorf("bad \"model\" string: %w", err)
					}
				}
			} else if string(b[ks:ke]) == `"stream"` && s.lit("true") == nil {
				f.stream = true
			} else if err := s.value(0); err != nil {
				return f, err
			} else if string(b[ks:ke]) == `"stream_options"` {
				f.streamOptions = true
			}
			s.ws()
			if s.eat('}') {
				break
			}
			if !s.eat(',') {
				return f, s.fail("expected ',' or '}' in the object")
			}
		}
	}
	s.ws()
	if s.i != len(b) {
		return f, s.fail("unexpected data after the JSON object")
	}
	return fields{model: model, start: start, end: end, found: found, stream: f.stream, streamOptions: f.streamOptions}, nil
}

// modelKey classifies an object key token: exact is the plain `"model"`;
// fold is any key some JSON parser takes for it (any case, any escapes).
func modelKey(tok []byte, esc bool) (exact, fold bool) {
	if !esc {
		if len(tok) != len(`"model"`) {
			return false, false // the fast path: most keys differ in length
		}
		k := string(tok[1 : len(tok)-1])
		return k == "model", strings.EqualFold(k, "model")
	}
	var k string
	return false, json.Unmarshal(tok, &k) == nil && strings.EqualFold(k, "model")
}

type scanner struct {
	b []byte
	i int
}

// SyntaxError is a malformed body.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s (at byte %d)", e.Msg, e.Offset) }

func (s *scanner) fail(msg string) error {
	if s.i >= len(s.b) {
		msg += ": the body ends too early"
	}
	return &SyntaxError{Offset: s.i, Msg: msg}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str scans a string token and returns its range (quotes included) and
// whether it holds escapes.
func (s *scanner) str() (start, end int, esc bool, err error) {
	start = s.i
	if !s.eat('"') {
		return 0, 0, false, s.fail("expected a string")
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return start, s.i, esc, nil
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				s.i++
				return 0, 0, false, s.fail("unfinished escape")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return 0, 0, false, s.fail(`bad \u escape`)
				}
				s.i += 6
			default:
				return 0, 0, false, s.fail("bad escape in a string")
			}
		case c < 0x20:
			return 0, 0, false, s.fail("control character in a string")
		default:
			s.i++
		}
	}
	return 0, 0, false, s.fail("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

var errDepth = errors.New("JSON nested too deeply")

// value skips one JSON value, checking its syntax.
func (s *scanner) value(depth int) error {
	if depth > maxDepth {
		return &SyntaxError{Offset: s.i, Msg: errDepth.Error()}
	}
	if s.i >= len(s.b) {
		return s.fail("expected a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, _, err := s.str()
		return err
	case c == '{':
		s.i++
		s.ws()
		if s.eat('}') {
			return nil
		}
		for {
			s.ws()
			if _, _, _, err := s.str(); err != nil {
				return err
			}
			s.ws()
			if !s.eat(':') {
				return s.fail("expected ':' after an object key")
			}
			s.ws()
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.eat('}') {
				return nil
			}
			if !s.eat(',') {
				return s.fail("expected ',' or '}' in an object")
			}
		}
	case c == '[':
		s.i++
		s.ws()
		if s.eat(']') {
			return nil
		}
		for {
			s.ws()
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.eat(']') {
				return nil
			}
			if !s.eat(',') {
				return s.fail("expected ',' or ']' in an array")
			}
		}
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return s.fail("expected a value")
}

func (s *scanner) lit(w string) error {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return nil
	}
	return s.fail("bad literal")
}

func (s *scanner) number() error {
	st := s.i
	s.eat('-')
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return s.fail("bad number")
	}
	if s.eat('.') && digits() == 0 {
		return s.fail("bad number")
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if !s.eat('+') {
			s.eat('-')
		}
		if digits() == 0 {
			return s.fail("bad number")
		}
	}
	if s.i == st {
		return s.fail("bad number")
	}
	return nil
}

// ReplaceModel returns body with the model string token at [start, end)
// replaced by name, JSON-quoted.
func ReplaceModel(body []byte, start, end int, name string) []byte {
	q, _ := json.Marshal(name)
	out := make([]byte, 0, len(body)-(end-start)+len(q))
	out = append(out, body[:start]...)
	out = append(out, q...)
	return append(out, body[end:]...)
}

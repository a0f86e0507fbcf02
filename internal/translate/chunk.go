package translate

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// decodeChunk reads an engine's stream chunk. The shape every token
// takes — choices whose delta holds text, a role, a finish reason — is
// read by hand (json.Unmarshal was most of a translated event's cost);
// anything else (tool calls, usage, reasoning, an odd key, an escape it
// does not know) goes to json.Unmarshal, as does what is not JSON.
// fastChunk never gives another result than Unmarshal: FuzzChunkDecode.
func decodeChunk(data []byte) (ChatChunk, error) {
	var c ChatChunk
	if fastChunk(data, &c) {
		return c, nil
	}
	c = ChatChunk{}
	err := json.Unmarshal(data, &c)
	return c, err
}

// chunkReader walks a chunk's JSON; ok turns false at the first thing it
// does not take, and then every step does nothing.
type chunkReader struct {
	b  []byte
	i  int
	ok bool
}

func (r *chunkReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\r', '\n':
			r.i++
		default:
			return
		}
	}
}

// byte takes c, after blanks.
func (r *chunkReader) byte(c byte) bool {
	r.ws()
	if r.ok && r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// peek is the next byte after blanks, 0 at the end.
func (r *chunkReader) peek() byte {
	r.ws()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

// key reads an object's key and its colon. Keys with upper-case letters
// fail: Unmarshal matches them to fields regardless of case.
func (r *chunkReader) key() string {
	s, raw := r.rawString()
	for _, c := range raw {
		if 'A' <= c && c <= 'Z' || c == '\\' {
			r.ok = false
		}
	}
	if !r.byte(':') {
		r.ok = false
	}
	return s
}

// str reads a string value. Escapes other than \" \\ \/ \n \t \r, and bytes
// that are not UTF-8, fail (Unmarshal then decides).
func (r *chunkReader) str() string {
	s, _ := r.rawString()
	return s
}

func (r *chunkReader) rawString() (string, []byte) {
	if !r.byte('"') {
		r.ok = false
		return "", nil
	}
	start, esc, high := r.i, false, false
	for ; r.i < len(r.b); r.i++ {
		switch c := r.b[r.i]; {
		case c == '"':
			raw := r.b[start:r.i]
			r.i++
			if high && !utf8.Valid(raw) {
				r.ok = false
				return "", nil
			}
			if !esc {
				return string(raw), raw
			}
			return r.unescape(raw), raw
		case c == '\\':
			esc = true
			r.i++
		case c < 0x20:
			r.ok = false
			return "", nil
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	r.ok = false
	return "", nil
}

func (r *chunkReader) unescape(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			out = append(out, raw[i])
			continue
		}
		i++
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		default:
			r.ok = false
			return ""
		}
	}
	return string(out)
}

// null reads null; false (nothing read) when the value is something else.
func (r *chunkReader) null() bool {
	r.ws()
	if r.ok && len(r.b)-r.i >= 4 && string(r.b[r.i:r.i+4]) == "null" {
		r.i += 4
		return true
	}
	return false
}

// int reads a non-negative integer of up to 18 digits (others fail:
// Unmarshal decides).
func (r *chunkReader) int() int64 {
	r.ws()
	start := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	n, err := strconv.ParseInt(string(r.b[start:r.i]), 10, 64)
	if err != nil || r.i-start > 18 || (r.i-start > 1 && r.b[start] == '0') {
		r.ok = false
	}
	return n
}

// skip reads a value it does not keep: a string, a number, true, false
// or null (anything else fails).
func (r *chunkReader) skip() {
	switch c := r.peek(); {
	case c == '"':
		r.rawString()
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if len(r.b)-r.i >= len(lit) && string(r.b[r.i:r.i+len(lit)]) == lit {
				r.i += len(lit)
				return
			}
		}
		r.ok = false
	case c == '-' || c >= '0' && c <= '9':
		start := r.i
		for r.i < len(r.b) && (r.b[r.i] == '-' || r.b[r.i] == '+' || r.b[r.i] == '.' || r.b[r.i] == 'e' || r.b[r.i] == 'E' || r.b[r.i] >= '0' && r.b[r.i] <= '9') {
			r.i++
		}
		if !json.Valid(r.b[start:r.i]) {
			r.ok = false
		}
	default:
		r.ok = false
	}
}

// object reads an object's members, each with field. A key that comes
// twice fails: Unmarshal's way with it (decoding into what the first
// left) is not worth copying.
func (r *chunkReader) object(field func(key string)) {
	if !r.byte('{') {
		r.ok = false
		return
	}
	if r.byte('}') {
		return
	}
	var seen [8]string
	n := 0
	for r.ok {
		k := r.key()
		for _, s := range seen[:n] {
			if s == k {
				r.ok = false
			}
		}
		if n < len(seen) {
			seen[n] = k
			n++
		} else {
			r.ok = false
		}
		field(k)
		if r.byte('}') {
			return
		}
		if !r.byte(',') {
			r.ok = false
		}
	}
}

func fastChunk(data []byte, c *ChatChunk) bool {
	r := &chunkReader{b: data, ok: true}
	r.object(func(k string) {
		switch k {
		case "id":
			c.ID = r.str()
		case "model":
			c.Model = r.str()
		case "created":
			c.Created = r.int()
		case "choices":
			r.choices(c)
		case "usage":
			if !r.null() {
				r.ok = false
			}
			c.Usage = nil
		default:
			r.skip()
		}
	})
	r.ws()
	return r.ok && r.i == len(r.b)
}

func (r *chunkReader) choices(c *ChatChunk) {
	if r.null() {
		c.Choices = nil
		return
	}
	if !r.byte('[') {
		r.ok = false
		return
	}
	c.Choices = []ChunkChoice{} // as Unmarshal: empty, not nil
	if r.byte(']') {
		return
	}
	for r.ok {
		var ch ChunkChoice
		r.object(func(k string) {
			switch k {
			case "index":
				ch.Index = int(r.int())
			case "delta":
				r.delta(&ch.Delta)
			case "finish_reason":
				if r.null() {
					ch.FinishReason = nil
				} else {
					s := r.str()
					ch.FinishReason = &s
				}
			case "logprobs", "stop_reason", "text":
				if !r.null() {
					r.ok = false // values the slow path reads
				}
			default:
				r.skip()
			}
		})
		c.Choices = append(c.Choices, ch)
		if r.byte(']') {
			return
		}
		if !r.byte(',') {
			r.ok = false
		}
	}
}

func (r *chunkReader) delta(d *Delta) {
	r.object(func(k string) {
		switch k {
		case "content":
			if r.null() {
				d.Content = nil
			} else {
				s := r.str()
				d.Content = &s
			}
		case "role":
			d.Role = r.str()
		default:
			// tool_calls, reasoning_content and the rest: Unmarshal's
			r.ok = false
		}
	})
}

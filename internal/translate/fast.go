package translate

import (
	"strconv"
	"unicode/utf8"
)

// The events of a stream's text, one per token, are written by hand: a
// map marshalled per token cost more than the rest of the relay. The bytes
// are those json.Marshal writes (sorted keys, its string escaping), which
// fast_test.go checks.

// appendString appends s as encoding/json writes a string: quoted, with
// ", \ and control characters escaped, <, > and & as \u003c, \u003e and
// \u0026 (HTML-safe, json.Marshal's default), U+2028 and U+2029 escaped,
// and invalid UTF-8 as \ufffd.
func appendString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '\\', '"':
				buf = append(buf, '\\', b)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// anthropicTextDelta is sse(buf, "content_block_delta", the text delta of
// block index).
func anthropicTextDelta(buf []byte, index int, text string) []byte {
	buf = append(buf, "event: content_block_delta\ndata: {\"delta\":{\"text\":"...)
	buf = appendString(buf, text)
	buf = append(buf, `,"type":"text_delta"},"index":`...)
	buf = strconv.AppendInt(buf, int64(index), 10)
	return append(buf, ",\"type\":\"content_block_delta\"}\n\n"...)
}

// responsesTextDelta is s.event(buf, "response.output_text.delta", …).
func (s *ResponsesStream) textDelta(buf []byte, text string) []byte {
	buf = append(buf, "event: response.output_text.delta\ndata: {\"content_index\":0,\"delta\":"...)
	buf = appendString(buf, text)
	buf = append(buf, `,"item_id":`...)
	buf = appendString(buf, s.resp.Output[s.open].ID)
	buf = append(buf, `,"output_index":`...)
	buf = strconv.AppendInt(buf, int64(s.open), 10)
	buf = append(buf, `,"sequence_number":`...)
	buf = strconv.AppendInt(buf, int64(s.seq), 10)
	s.seq++
	return append(buf, ",\"type\":\"response.output_text.delta\"}\n\n"...)
}

// ollamaPiece is s.line(buf, the piece of text created at createdAt).
func (s *OllamaStream) ollamaPiece(buf []byte, createdAt, text string) []byte {
	buf = append(buf, `{"created_at":`...)
	buf = appendString(buf, createdAt)
	buf = append(buf, `,"done":false,`...)
	if s.req.generate {
		buf = append(buf, `"model":`...)
		buf = appendString(buf, s.model)
		buf = append(buf, `,"response":`...)
		buf = appendString(buf, text)
		return append(buf, "}\n"...)
	}
	buf = append(buf, `"message":{"role":"assistant","content":`...)
	buf = appendString(buf, text)
	buf = append(buf, `},"model":`...)
	buf = appendString(buf, s.model)
	return append(buf, "}\n"...)
}

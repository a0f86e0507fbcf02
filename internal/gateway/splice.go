package gateway

import (
	"bytes"
	"encoding/json"
	"io"
)

// A large body that must be said otherwise to the engine — an alias's
// served name, the usage gantry asks for — is not copied: it goes to the
// engine in pieces read from the client's buffer around the changes. A
// copy of a 31 MB body was as much memory again per request, beyond
// max_body_total. Small bodies are copied: a pooled connection takes only
// a body that can be sent twice.
const spliceMin = 1 << 20

// edit replaces body[at:end] with with.
type edit struct {
	at, end int
	with    []byte
}

// modelEdit is ReplaceModel as an edit.
func modelEdit(start, end int, name string) edit {
	q, _ := json.Marshal(name)
	return edit{start, end, q}
}

// usageEdit is askUsage as an edit: stream_options.include_usage as the
// object's first member. ok is false when body holds no object.
func usageEdit(body []byte) (e edit, ok bool) {
	i := bytes.IndexByte(body, '{')
	if i < 0 {
		return edit{}, false
	}
	with := includeKey
	if rest := bytes.TrimLeft(body[i+1:], " \t\r\n"); len(rest) > 0 && rest[0] == '}' {
		with = with[:len(with)-1] // an empty object: no comma
	}
	return edit{i + 1, i + 1, with}, true
}

// applyEdits is body with the edits (in order, not overlapping), copied.
func applyEdits(body []byte, edits ...edit) []byte {
	n := len(body)
	for _, e := range edits {
		n += len(e.with) - (e.end - e.at)
	}
	out := make([]byte, 0, n)
	pos := 0
	for _, e := range edits {
		out = append(append(out, body[pos:e.at]...), e.with...)
		pos = e.end
	}
	return append(out, body[pos:]...)
}

// rewritten is the body the engine gets: body itself without edits; with
// them, a copy of a small body (held against max_body_total), or the
// pieces of a large one read in turn.
func (g *Gateway) rewritten(q *request, body []byte, edits []edit) outBody {
	if len(edits) == 0 {
		return outBody{bytes: body}
	}
	if len(body) < spliceMin {
		return outBody{bytes: g.hold(q, applyEdits(body, edits...))}
	}
	var rs []io.Reader
	n, pos := 0, 0
	for _, e := range edits {
		rs = append(rs, bytes.NewReader(body[pos:e.at]), bytes.NewReader(e.with))
		n += e.at - pos + len(e.with)
		pos = e.end
	}
	rs = append(rs, bytes.NewReader(body[pos:]))
	n += len(body) - pos
	return outBody{stream: io.MultiReader(rs...), n: int64(n)}
}

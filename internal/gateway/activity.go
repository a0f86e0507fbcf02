package gateway

import (
	"bytes"
	"net/http"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/activity"
)

// ActivityLog receives one record per finished gateway request
// (*activity.Store is the real one); Add must not block.
type ActivityLog interface {
	Add(activity.Pending)
}

// SetActivity makes the gateway record every request in log, naming the
// key each one used with keyName (nil: no names). Call before serving.
func (g *Gateway) SetActivity(log ActivityLog, keyName func(*http.Request) string) {
	g.act, g.keyName = log, keyName
}

// tailSize is how much of an answer's end is kept for its usage: the
// final chunk of a stream, or the end of a plain answer, is well within
// (a stream's usage chunk gantry asked for is kept apart, whole).
const tailSize = 1024

var tailPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*tailSize); return &b }}

// exchange is what the activity log records of one request, gathered on
// its way through the gateway.
type exchange struct {
	asked, preset, served string
	fallback, stream      bool
	cold                  bool
	waited                time.Duration
	leasedAt              time.Time // when an engine was leased (zero: none)
	tokens                *activity.Tokens
	// stripUsage: gantry asked the engine for usage in a stream the client
	// did not ask it for, so the usage chunk is kept from the client.
	stripUsage bool
	on         bool    // the activity log is on: this request is recorded
	tail       *[]byte // the answer's last bytes (pooled; taken at the first)
	errBody    []byte  // the start of an error answer
	// usage is the usage chunk of a stream: kept from the client when
	// stripped, else a copy of the last event that carried one; carry is
	// the head of an event whose end has not arrived yet.
	usage, carry []byte
}

// keep remembers what the client got: the start of an error answer, or
// the last tailSize bytes of any other.
func (x *exchange) keep(code int, b []byte) {
	if code >= 400 {
		if room := 1024 - len(x.errBody); room > 0 {
			x.errBody = append(x.errBody, b[:min(room, len(b))]...)
		}
		return
	}
	if x.tail == nil {
		x.tail = tailPool.Get().(*[]byte)
	}
	t := *x.tail
	if len(b) >= tailSize {
		t = append(t[:0], b[len(b)-tailSize:]...)
	} else {
		if len(t)+len(b) > cap(t) {
			n := copy(t, t[len(t)-(tailSize-len(b)):])
			t = t[:n]
		}
		t = append(t, b...)
	}
	*x.tail = t
}

// record hands the finished request to the activity log.
func (g *Gateway) record(q *request, ttfb time.Duration, code int) {
	x, r, began := q.act(), q.r, q.began
	if x == nil {
		return
	}
	p := activity.Pending{Record: activity.Record{Time: began, Route: r.URL.Path, Model: x.asked, Served: x.served,
		Preset: x.preset, Fallback: x.fallback, Status: code, Stream: x.stream, Tokens: x.tokens, Cold: x.cold},
		TTFT: ttfb, Duration: time.Since(began), Waited: x.waited, ErrorBody: x.errBody}
	if !x.leasedAt.IsZero() {
		p.Held = time.Since(x.leasedAt)
	}
	if g.keyName != nil {
		p.Key = g.keyName(r)
	}
	var t []byte
	if x.tail != nil {
		t = *x.tail
	}
	switch {
	case x.tokens != nil:
	case len(x.usage) > 0:
		p.Tail, x.usage = x.usage, nil // all the record needs of the stream; its own copy
	case len(t) > 0:
		p.Tail = bytes.Clone(t[max(0, len(t)-tailSize):])
	}
	if x.tail != nil {
		*x.tail = t[:0]
		tailPool.Put(x.tail)
		x.tail = nil
	}
	g.act.Add(p)
}

var (
	// usageWord finds the "usage" key fast: Index looks for its first
	// byte, and a quote is in every JSON string, a "u" seldom.
	usageWord   = []byte(`usage"`)
	emptyChoice = []byte(`"choices":[]`)
	includeKey  = []byte(`"stream_options":{"include_usage":true},`)
)

// askUsage adds stream_options.include_usage to a streamed chat or
// completion request that does not set stream_options, so the engine
// reports the tokens in its last chunk (which the client then does not
// get: see stripUsage).
func askUsage(body []byte) []byte {
	e, ok := usageEdit(body)
	if !ok {
		return body
	}
	return applyEdits(body, e)
}

// eventEnd is the end of the last complete server-sent event in b (0:
// none).
func eventEnd(b []byte) int {
	if bytes.HasSuffix(b, []byte("\n\n")) || bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		return len(b) // the common case: a read ends with an event
	}
	end := 0
	if i := bytes.LastIndex(b, []byte("\n\n")); i >= 0 {
		end = i + 2
	}
	if i := bytes.LastIndex(b, []byte("\r\n\r\n")); i >= 0 && i+4 > end {
		end = i + 4
	}
	return end
}

// dropUsage removes the usage-only chunks ("choices":[] with a usage) from
// complete events, keeping the last for the record.
func (x *exchange) dropUsage(events []byte) []byte {
	if !bytes.Contains(events, usageWord) {
		return events
	}
	// In place: the events are the engine's read, gantry's own until the
	// next read.
	out := events[:0]
	for rest := events; len(rest) > 0; {
		n := nextEnd(rest)
		ev := rest[:n]
		if bytes.Contains(ev, usageWord) && bytes.Contains(ev, emptyChoice) {
			x.usage = append(x.usage[:0:0], ev...)
		} else {
			out = append(out, ev...) // copy moves left: never past what it reads
		}
		rest = rest[n:]
	}
	return out
}

// noteUsage keeps a copy of the last event of a stream that carries a
// usage, as the stream's pieces go by to the client unchanged. An event
// cut between two pieces is completed from the next: its head is carried
// over (nothing is, in the common case of pieces that end with an event).
func (x *exchange) noteUsage(p []byte) {
	data := p
	if len(x.carry) > 0 {
		data = append(x.carry, p...)
	}
	end := eventEnd(data)
	if bytes.Contains(data[:end], usageWord) { // seldom: LastIndex is slow
		i := bytes.LastIndex(data[:end], usageWord)
		start := eventEnd(data[:i])
		n := nextEnd(data[start:end])
		x.usage = append(x.usage[:0], data[start:start+n]...)
	}
	rest := data[end:]
	if len(rest) > 64<<10 {
		rest = nil // no event is that long; this is not one
	}
	// The copy moves left when data is carry's own array: never past what
	// it reads.
	x.carry = append(x.carry[:0], rest...)
}

// complete takes what the engine sent (with held, the incomplete event of
// the read before) and returns the complete events without the usage chunk,
// and what stays held; at the end (last) nothing is held back.
func (x *exchange) complete(held, read []byte, last bool) (out, stillHeld []byte) {
	data := read
	if len(held) > 0 {
		data = append(held, read...)
	}
	end := len(data)
	if !last {
		end = eventEnd(data)
	}
	out = x.dropUsage(data[:end])
	if end < len(data) {
		// The rest is copied out: the read buffer is reused.
		stillHeld = append(held[:0:0], data[end:]...)
	}
	return out, stillHeld
}

// nextEnd is the length of the first event of b, its blank line included.
func nextEnd(b []byte) int {
	i, j := bytes.Index(b, []byte("\n\n")), bytes.Index(b, []byte("\r\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return len(b)
	case j < 0 || (i >= 0 && i+2 <= j+4):
		return i + 2
	}
	return j + 4
}

// tokensSoFar are the answer's token counts as far as they are known now
// (-1: not known), read from what the record kept; for a traced request.
func (x *exchange) tokensSoFar() (prompt, completion int) {
	t := x.tokens
	switch {
	case t != nil:
	case len(x.usage) > 0:
		t = activity.ParseUsage(x.usage)
	case x.tail != nil && len(*x.tail) > 0:
		t = activity.ParseUsage(*x.tail)
	}
	if t == nil {
		return -1, -1
	}
	return t.Prompt, t.Completion
}

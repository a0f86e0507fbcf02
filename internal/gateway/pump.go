package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/sched"
)

var dataPrefix = []byte("data:")

// copyBody relays the engine's response; one cut short ends with the
// reason the engine's state gives.
func (g *Gateway) copyBody(q *request, resp *http.Response, lease *sched.Lease, sse bool) {
	err := g.pump(q, resp, sse)
	if cause := context.Cause(q.r.Context()); errors.Is(cause, auth.ErrKeyRemoved) {
		cutShort(q, sse, cause.Error()+": send it again with a key of the config")
		return
	}
	if err != nil {
		g.logger.Warn("engine response cut", "model", lease.Model.Name, "err", err)
		cutShort(q, sse, g.deadMessage(lease, err))
	}
}

// pump copies a response's body to the client. Server-sent events leave
// as soon as nothing more has arrived behind them, so every event reaches
// the client when the engine sends it, and events that arrived together
// leave in one write. The error is the read's that cut the answer short;
// nil when it ended or the client went away.
func (g *Gateway) pump(q *request, resp *http.Response, sse bool) error {
	out := relayOut{q: q, sse: sse, lineStart: true}
	if fl, ok := q.ResponseWriter.(flusher); ok {
		out.fl = fl // net/http's own writer: found once, not by Unwrap per flush
	} else {
		out.fl = controller{http.NewResponseController(q)}
	}
	if x := q.act(); sse && x != nil {
		q.streaming = true // the usage is found in the events, not in a tail
		out.x, out.strip = x, x.stripUsage
	}
	if src, ok := resp.Body.(*upstreamBody); ok && src.src != nil {
		return out.relay(src)
	}
	pool := &g.bufs
	if sse {
		pool = &g.sseBufs
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	return out.relay(&readerPieces{r: resp.Body, buf: *bp})
}

// relayOut is the client's side of a relay: what it writes, how it
// flushes, and the state of the events that went through.
type relayOut struct {
	q   *request
	sse bool
	fl  flusher
	// x, when set, notes the stream's usage (strip: and keeps its chunk
	// from the client); held is an event not complete yet, when stripping.
	x     *exchange
	strip bool
	held  []byte
	// lineStart: the next byte begins a line (the event count looks at
	// each line's start).
	lineStart bool
}

// relay writes src's pieces as they come and flushes server-sent events
// when no more has arrived.
func (o *relayOut) relay(src pieces) error {
	pending := false
	for {
		p, err := src.next(!pending)
		if len(p) > 0 {
			ok := o.write(p, false)
			src.consume(len(p))
			if !ok {
				return nil // client gone; its context cancels the upstream request
			}
			pending = true
			continue
		}
		if err == io.EOF && len(o.held) > 0 {
			if !o.write(nil, true) {
				return nil
			}
			pending = true
		}
		if pending {
			pending = false
			if o.sse && o.fl.FlushError() != nil {
				return nil
			}
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil && o.q.gone():
			return nil
		case err != nil:
			return err
		}
	}
}

// write sends p on (the usage chunk kept back when stripping; last: p is
// the end of the answer); false when the client is gone.
func (o *relayOut) write(p []byte, last bool) bool {
	if o.strip {
		p, o.held = o.x.complete(o.held, p, last)
	} else if o.x != nil {
		o.x.noteUsage(p)
	}
	if len(p) == 0 {
		return true
	}
	if o.sse {
		var n int
		n, o.lineStart = dataLines(p, o.lineStart)
		o.q.events += n
	}
	_, err := o.q.Write(p)
	return err == nil
}

// flusher is what net/http's response writer flushes with.
type flusher interface{ FlushError() error }

// controller flushes any other writer (a test's recorder).
type controller struct{ rc *http.ResponseController }

func (c controller) FlushError() error { return c.rc.Flush() }

// dataLines counts the lines of p that begin with "data:": an event each,
// as engines send them. start says whether p begins a line; next whether
// the byte after p does.
func dataLines(p []byte, start bool) (n int, next bool) {
	for len(p) > 0 {
		if start && bytes.HasPrefix(p, dataPrefix) {
			n++
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, false
		}
		p, start = p[i+1:], true
	}
	return n, start
}

// readerPieces is any body as pieces: read into buf, one read at a time.
type readerPieces struct {
	r    io.Reader
	buf  []byte
	have []byte
	err  error
}

func (r *readerPieces) next(wait bool) ([]byte, error) {
	if len(r.have) > 0 || r.err != nil {
		return r.have, r.err
	}
	if !wait {
		return nil, nil
	}
	n, err := r.r.Read(r.buf)
	r.have, r.err = r.buf[:n], err
	return r.have, nil
}

func (r *readerPieces) consume(n int) { r.have = r.have[n:] }

package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
)

// An engine's answer body, read straight out of its connection's read
// buffer: the relay writes each piece where it lies (no copy into a
// buffer of the gateway's, none held per stream), and learns what has
// arrived without waiting, so that what the engine sent in one go leaves in
// one write, and an event with nothing behind it leaves at once.
type pieces interface {
	// next returns body bytes that sit in the buffer, valid until consume
	// or the next call; with wait false it returns nil, nil when none
	// has arrived, with wait true it reads until some has. io.EOF ends
	// the body.
	next(wait bool) ([]byte, error)
	// consume consumes n bytes of what next returned.
	consume(n int)
}

// usePieces reads the body of resp straight from its connection's
// buffer when its framing is chunked or a length; a body that ends when
// the connection does is left to net/http's reader. The readers live in
// the body itself: no allocation.
func (b *upstreamBody) usePieces(resp *http.Response) {
	switch {
	case resp.Body == http.NoBody:
	case len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked":
		b.chunked = chunkedBody{br: b.c.br}
		b.src = &b.chunked
	case len(resp.TransferEncoding) == 0 && resp.ContentLength >= 0:
		b.fixed = fixedBody{br: b.c.br, left: resp.ContentLength}
		b.src = &b.fixed
	}
}

// fixedBody is a body of a known length.
type fixedBody struct {
	br   *bufio.Reader
	left int64
}

func (f *fixedBody) next(wait bool) ([]byte, error) {
	if f.left == 0 {
		return nil, io.EOF
	}
	return buffered(f.br, f.left, wait)
}

func (f *fixedBody) consume(n int) {
	f.br.Discard(n) //nolint:errcheck // n bytes are buffered: next returned them
	f.left -= int64(n)
}

// buffered returns up to max bytes that sit in br, reading first when
// none does and wait says so; a connection that ends there ends the body
// too early.
func buffered(br *bufio.Reader, max int64, wait bool) ([]byte, error) {
	n := br.Buffered()
	if n == 0 {
		if !wait {
			return nil, nil
		}
		if _, err := br.Peek(1); err != nil {
			return nil, unexpected(err)
		}
		n = br.Buffered()
	}
	p, _ := br.Peek(int(min(int64(n), max))) // buffered: no error
	return p, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chunkedBody decodes HTTP/1.1's chunked framing (RFC 9112 §7.1), as
// net/http's reader does: a chunk's size line in hex, extensions ignored,
// its data and CRLF; after the last chunk (size 0), trailer lines up to an
// empty one, ignored.
type chunkedBody struct {
	br      *bufio.Reader
	left    int64 // data bytes left of the current chunk
	crlf    bool  // the current chunk's CRLF comes next
	trailer bool  // the last chunk was read: trailer lines come next
	err     error // sticky: io.EOF at the end
}

var errChunked = errors.New("malformed chunked encoding")

func (c *chunkedBody) next(wait bool) ([]byte, error) {
	for c.err == nil {
		switch {
		case c.left > 0:
			p, err := buffered(c.br, c.left, wait)
			if err != nil {
				c.err = err
			}
			return p, err
		case c.crlf:
			b, ok := c.take(2, wait)
			if !ok {
				return nil, c.err
			}
			if b[0] != '\r' || b[1] != '\n' {
				c.err = errChunked
				break
			}
			c.br.Discard(2) //nolint:errcheck // take found them buffered
			c.crlf = false
		default:
			line, ok := c.line(wait)
			if !ok {
				return nil, c.err
			}
			if c.trailer {
				if len(line) == 0 {
					c.err = io.EOF
				}
				continue
			}
			size, ok := chunkSize(line)
			switch {
			case !ok:
				c.err = errChunked
			case size == 0:
				c.trailer = true
			default:
				c.left = size
			}
		}
	}
	return nil, c.err
}

func (c *chunkedBody) consume(n int) {
	c.br.Discard(n) //nolint:errcheck // next returned them: buffered
	c.left -= int64(n)
	if c.left == 0 {
		c.crlf = true
	}
}

// take peeks at the next n bytes: ok false when they have not all arrived
// and wait is false, or on an error (then in c.err).
func (c *chunkedBody) take(n int, wait bool) ([]byte, bool) {
	if c.br.Buffered() < n && !wait {
		return nil, false
	}
	b, err := c.br.Peek(n)
	if err != nil {
		c.err = unexpected(err)
		return nil, false
	}
	return b, true
}

// line reads the next line, its end (LF or CRLF) and trailing blanks cut;
// ok false when it has not all arrived and wait is false, or on an error.
func (c *chunkedBody) line(wait bool) ([]byte, bool) {
	var l []byte
	if wait {
		var err error
		if l, err = c.br.ReadSlice('\n'); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errChunked // a size line longer than the buffer
			}
			c.err = unexpected(err)
			return nil, false
		}
	} else {
		buf, _ := c.br.Peek(c.br.Buffered())
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			if len(buf) == c.br.Size() {
				c.err = errChunked
			}
			return nil, false
		}
		l = buf[:i+1]
		c.br.Discard(i + 1) //nolint:errcheck // buffered
	}
	return trimEnd(l), true
}

// trimEnd cuts a line's end and the blanks before it.
func trimEnd(l []byte) []byte {
	for len(l) > 0 {
		switch l[len(l)-1] {
		case ' ', '\t', '\r', '\n':
			l = l[:len(l)-1]
			continue
		}
		break
	}
	return l
}

// chunkSize parses a chunk's size line: hex digits, then extensions after
// a semicolon, which are ignored.
func chunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = trimEnd(line[:i])
	}
	if len(line) == 0 || len(line) > 16 {
		return 0, false
	}
	var n int64
	for _, b := range line {
		switch {
		case '0' <= b && b <= '9':
			b -= '0'
		case 'a' <= b && b <= 'f':
			b -= 'a' - 10
		case 'A' <= b && b <= 'F':
			b -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(b)
	}
	return n, n >= 0
}

// readPieces is io.Reader's Read over pieces.
func readPieces(src pieces, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := src.next(true)
	if len(b) == 0 {
		return 0, err
	}
	n := copy(p, b)
	src.consume(n)
	return n, nil
}

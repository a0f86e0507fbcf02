package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// upstream is a minimal HTTP/1.1 client for the engines on loopback: it
// writes the request and reads the response in the caller's goroutine on a
// pooled keep-alive connection. net/http's Transport hands every request to
// a write loop and every response from a read loop — two goroutine
// switches per request that show at 16 concurrent clients on two cores.
type upstream struct {
	mu      sync.Mutex
	idle    map[string][]*uconn
	maxIdle int
	dialer  net.Dialer
}

type uconn struct {
	c net.Conn
	// br is the connection's read buffer while it is in use, nil while it
	// is idle in the pool (attach, detach).
	br *bufio.Reader
	// raw, peek, one and calm serve quiet's peek at the idle socket.
	raw  syscall.RawConn
	peek func(uintptr) bool
	one  [1]byte
	calm bool
}

func newUpstream(maxIdlePerHost int) *upstream {
	return &upstream{idle: map[string][]*uconn{}, maxIdle: maxIdlePerHost,
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
}

// get takes a pooled connection to addr, nil when there is none. One on
// which the engine sent something while it was idle — an answer to no
// request gantry made, or its close — is out of step with its requests:
// it is closed, never handed to the next client.
func (u *upstream) get(addr string) *uconn {
	for {
		u.mu.Lock()
		l := u.idle[addr]
		if len(l) == 0 {
			u.mu.Unlock()
			return nil
		}
		c := l[len(l)-1]
		u.idle[addr] = l[:len(l)-1]
		u.mu.Unlock()
		if c.quiet() {
			c.attach()
			return c
		}
		c.closeConn()
	}
}

// Idle connections hold no buffers: a connection takes a read buffer when
// it is used and gives it back when it goes idle, and a write buffer only
// while a request is written. After a burst of streams, hundreds of idle
// connections held 12 KiB each.
var (
	readBufs  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
	writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// attach gives the connection a read buffer; detach takes it back (when
// nothing is left in it: put and Close see to that).
func (c *uconn) attach() {
	c.br = readBufs.Get().(*bufio.Reader)
	c.br.Reset(c.c)
}

func (c *uconn) detach() {
	if c.br != nil {
		c.br.Reset(nil)
		readBufs.Put(c.br)
		c.br = nil
	}
}

// closeConn closes the connection and gives its buffer back.
func (c *uconn) closeConn() {
	c.c.Close()
	c.detach()
}

// quiet reports whether nothing waits to be read on an idle connection:
// no byte in its buffer nor in the socket, and no close. A peek that
// does not block (MSG_PEEK|MSG_DONTWAIT): one syscall, no allocation.
func (c *uconn) quiet() bool {
	if c.br != nil && c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true // not a socket (tests' pipes): nothing to peek at
	}
	c.calm = false
	return c.raw.Read(c.peek) == nil && c.calm
}

// peekFD is quiet's look at the socket; set up once per connection so
// that a reuse allocates nothing.
func (c *uconn) peekFD(fd uintptr) bool {
	// recvfrom(2) without a source address: unix.Recvfrom's would be
	// allocated on every call.
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.one[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	c.calm = errno == unix.EAGAIN || errno == unix.EWOULDBLOCK
	return true // never wait
}

// put pools a connection whose answer was read to its end (nothing left
// in its buffer), or closes it when the pool is full.
func (u *upstream) put(addr string, c *uconn) {
	c.detach()
	u.mu.Lock()
	if len(u.idle[addr]) < u.maxIdle {
		u.idle[addr] = append(u.idle[addr], c)
		c = nil
	}
	u.mu.Unlock()
	if c != nil {
		c.c.Close()
	}
}

// closeIdle drops the pooled connections to addr, or to every engine when
// addr is "".
func (u *upstream) closeIdle(addr string) {
	u.mu.Lock()
	var drop [][]*uconn
	if addr == "" {
		for _, l := range u.idle {
			drop = append(drop, l)
		}
		u.idle = map[string][]*uconn{}
	} else {
		drop = append(drop, u.idle[addr])
		delete(u.idle, addr)
	}
	u.mu.Unlock()
	for _, l := range drop {
		for _, c := range l {
			c.c.Close()
		}
	}
}

func (u *upstream) dial(ctx context.Context, addr string) (*uconn, error) {
	c, err := u.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Small buffers: a burst of streams holds hundreds of connections.
	// Bodies larger than a buffer pass it by and go straight to the socket.
	uc := &uconn{c: c}
	uc.attach()
	if sc, ok := c.(syscall.Conn); ok {
		if uc.raw, err = sc.SyscallConn(); err != nil {
			c.Close()
			return nil, err
		}
		uc.peek = uc.peekFD
	}
	return uc, nil
}

// roundTrip sends the client's request r, with body in place of its own,
// to the engine at addr (host:port) and returns the response; hop-by-hop
// headers and the client's key stay behind. The response's Body returns
// the connection to the pool when read to the end, and closes it when
// closed early. A pooled connection the engine had closed is retried once
// on a fresh one: nothing of the request reached the engine then.
func (u *upstream) roundTrip(addr string, r *http.Request, body []byte) (*http.Response, error) {
	return u.send(addr, r, r.Method, r.URL.RequestURI(), r.Header, body)
}

// send is roundTrip with the method, target and headers given apart from
// the client's request r (whose context and method still rule): a
// translated request goes to another route with other headers.
func (u *upstream) send(addr string, r *http.Request, method, uri string, header http.Header, body []byte) (*http.Response, error) {
	return u.sendBody(addr, r, method, uri, header, outBody{bytes: body})
}

// outBody is a request body: bytes in memory, or n bytes from a reader (an
// upload spooled to disk, a relayed stream).
type outBody struct {
	bytes  []byte
	stream io.Reader
	n      int64
}

func (b outBody) len() int64 {
	if b.stream != nil {
		return b.n
	}
	return int64(len(b.bytes))
}

func (u *upstream) sendBody(addr string, r *http.Request, method, uri string, header http.Header, body outBody) (*http.Response, error) {
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		c := u.get(addr)
		if body.stream != nil && c != nil {
			// A stream cannot be sent twice: no pooled connection the
			// engine may have closed meanwhile.
			u.put(addr, c)
			c = nil
		}
		reused := c != nil
		if c == nil {
			var err error
			if c, err = u.dial(ctx, addr); err != nil {
				return nil, err
			}
		}
		// The client's cancel cuts the connection, and so the engine's work.
		stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
		resp, err := u.exchange(c, addr, r, method, uri, header, body)
		if err != nil {
			stop()
			c.closeConn()
			if reused && attempt == 0 && ctx.Err() == nil && staleConn(err) {
				continue
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		b := &upstreamBody{rc: resp.Body, c: c, u: u, addr: addr, stop: stop, keep: !resp.Close}
		b.usePieces(resp)
		resp.Body = b
		return resp, nil
	}
}

// exchange writes the request straight from the client's: building a new
// http.Request (a URL parse and a header map) cost an eighth of the
// gateway's time per request.
func (u *upstream) exchange(c *uconn, addr string, r *http.Request, method, uri string, header http.Header, body outBody) (*http.Response, error) {
	if !validTarget(uri) {
		// Every caller builds uri from an escaped path; this is the last
		// line should one ever not: such a byte would end the request line
		// and start a request of the client's making.
		return nil, errBadTarget
	}
	bw := writeBufs.Get().(*bufio.Writer)
	bw.Reset(c.c)
	defer func() {
		bw.Reset(nil)
		writeBufs.Put(bw)
	}()
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(addr)
	bw.WriteString("\r\n")
	named := connectionNamed(header)
	for k, vs := range header {
		if hopHeaders[k] || named[k] {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("Content-Length: ")
	bw.WriteString(strconv.FormatInt(body.len(), 10))
	bw.WriteString("\r\n\r\n")
	if body.stream != nil {
		if _, err := io.CopyN(bw, body.stream, body.n); err != nil {
			return nil, err // not a stale connection: the body failed
		}
	} else {
		bw.Write(body.bytes)
	}
	if err := bw.Flush(); err != nil {
		return nil, &writeErr{err}
	}
	for {
		resp, err := http.ReadResponse(c.br, r)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, err
		}
		// An informational answer (100 Continue, 103 Early Hints) comes
		// before the real one: skip it.
		resp.Body.Close()
	}
}

// errBadTarget is a request target that would not stay one request line.
var errBadTarget = errors.New("gantry refused to send a request target with a control character or a space")

// validTarget reports whether uri can stand in a request line as one
// token (RFC 9112 §3.2): not empty, no control character (CR and LF end
// the line), no space (it ends the target).
func validTarget(uri string) bool { return uri != "" && !ctlOrSpace(uri) }

// ctlOrSpace reports whether s holds a control character, DEL or a space.
func ctlOrSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

type writeErr struct{ err error }

func (e *writeErr) Error() string { return e.err.Error() }
func (e *writeErr) Unwrap() error { return e.err }

// staleConn reports whether err is what a keep-alive connection the
// engine closed meanwhile gives: a failed write, or EOF before any byte.
func staleConn(err error) bool {
	var we *writeErr
	return errors.As(err, &we) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// upstreamBody gives the connection back when the body was read whole.
// Its bytes come from src, straight from the connection's buffer, when
// the body's framing allows (net/http's rc then stays unread and unclosed:
// its Close would read on), else from rc.
type upstreamBody struct {
	rc      io.ReadCloser
	src     pieces // &chunked, &fixed, or nil
	chunked chunkedBody
	fixed   fixedBody
	c       *uconn
	u       *upstream
	addr    string
	stop    func() bool
	keep    bool
	eof     bool
	closed  bool
}

// buffered reports whether bytes of the body have arrived and wait unread.
func (b *upstreamBody) buffered() bool { return b.c.br.Buffered() > 0 }

func (b *upstreamBody) Read(p []byte) (int, error) {
	var n int
	var err error
	if b.src != nil {
		n, err = readPieces(b.src, p)
	} else {
		n, err = b.rc.Read(p)
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// next and done relay the body piece by piece (pieces), where src can.
func (b *upstreamBody) next(wait bool) ([]byte, error) {
	p, err := b.src.next(wait)
	if err == io.EOF {
		b.eof = true
	}
	return p, err
}

func (b *upstreamBody) consume(n int) { b.src.consume(n) }

func (b *upstreamBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.src == nil {
		b.rc.Close()
	}
	// Bytes after the end of the answer are no answer to this request:
	// the connection is out of step and goes.
	if b.stop() && b.eof && b.keep && b.c.br.Buffered() == 0 {
		b.u.put(b.addr, b.c)
		return nil
	}
	b.c.closeConn()
	return nil
}

package hubtest

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// The faults the stand-in plays, the counters of what it served, and the
// one writer of file bytes that both go through.

// CutNext makes the next GET of file p (a path in a repository) end after
// n bytes of its body, the connection closed as a network failure does.
func (s *Server) CutNext(p string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.cut[p] = n
}

// Corrupt makes every answer with file p's bytes carry its middle byte
// flipped.
func (s *Server) Corrupt(p string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.corrupt[p] = on
}

// Throttle limits each answer's body to bytesPerSecond (0: no limit).
func (s *Server) Throttle(bytesPerSecond int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.rate = bytesPerSecond
}

// Fail5xx makes the next n requests answer 503.
func (s *Server) Fail5xx(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.fail5xx = n
}

// OnServed calls fn (from the serving goroutine) after each chunk of a
// file's bytes goes out: p is the file's path, n the bytes of it served
// so far in all answers.
func (s *Server) OnServed(fn func(p string, n int64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.onServed = fn
}

// Served is the number of file bytes served (bodies of resolve and CDN
// answers), all files together.
func (s *Server) Served() int64 { return s.served.Load() }

// WeightsServed is the number of weight bytes served: bytes past a
// safetensors header or at a GGUF's tensor data.
func (s *Server) WeightsServed() int64 { return s.weights.Load() }

// ServedOf is the number of bytes of file p served.
func (s *Server) ServedOf(p string) int64 {
	if v, ok := s.perFile.Load(p); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Requests is the number of HTTP requests answered, both origins.
func (s *Server) Requests() int64 { return s.requests.Load() }

// ResetCounters sets the byte and request counters to zero.
func (s *Server) ResetCounters() {
	s.served.Store(0)
	s.weights.Store(0)
	s.requests.Store(0)
	s.perFile.Range(func(k, _ any) bool { s.perFile.Delete(k); return true })
}

// chunk is the unit the stand-in writes (and counts) a body in.
const chunk = 256 << 10

// copyBody writes f's bytes [start, end) with the faults asked for,
// counting what goes out.
func (s *Server) copyBody(w http.ResponseWriter, f *File, start, end int64) {
	s.mu.Lock()
	cut, hasCut := s.faults.cut[f.Path]
	delete(s.faults.cut, f.Path)
	corrupt, rate, onServed := s.faults.corrupt[f.Path], s.faults.rate, s.faults.onServed
	s.mu.Unlock()
	counter, _ := s.perFile.LoadOrStore(f.Path, new(atomic.Int64))
	buf := make([]byte, chunk)
	began := time.Now()
	sent := int64(0)
	for off := start; off < end; {
		n := min(int64(len(buf)), end-off)
		if hasCut && sent+n > cut {
			n = cut - sent
		}
		if n > 0 {
			if _, err := f.data.ReadAt(buf[:n], off); err != nil && err != io.EOF {
				panic(http.ErrAbortHandler)
			}
			if mid := f.size / 2; corrupt && off <= mid && mid < off+n {
				buf[mid-off] ^= 0xff
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			s.count(f, counter.(*atomic.Int64), off, n, onServed)
			off += n
			sent += n
		}
		if hasCut && sent >= cut {
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			panic(http.ErrAbortHandler) // the connection is closed mid-body
		}
		if rate > 0 {
			if ahead := time.Duration(float64(sent)/float64(rate)*float64(time.Second)) - time.Since(began); ahead > 0 {
				if fl, ok := w.(http.Flusher); ok {
					fl.Flush()
				}
				time.Sleep(ahead)
			}
		}
	}
}

func (s *Server) count(f *File, c *atomic.Int64, off, n int64, onServed func(string, int64)) {
	s.served.Add(n)
	total := c.Add(n)
	if f.weightsAt >= 0 && off+n > f.weightsAt {
		s.weights.Add(off + n - max(off, f.weightsAt))
	}
	if onServed != nil {
		onServed(f.Path, total)
	}
}

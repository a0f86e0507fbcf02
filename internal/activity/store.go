package activity

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a store.
type Options struct {
	// Dir holds the log's segment files (<root>/state/activity).
	Dir string
	// KeepDays drops records older than this many days; KeepRows keeps at
	// most this many of the newest records (the files may hold up to a
	// tenth more until the next segment starts).
	KeepDays, KeepRows int
	Logger             *slog.Logger
	// Now replaces the clock (tests).
	Now func() time.Time
	// OnRecord, when set, sees every record once it is made (on the
	// store's goroutine): the usage per key and its tokens per minute.
	OnRecord func(Record)
}

// memoryOnly reports whether the store keeps nothing on disk (no Dir):
// records only reach OnRecord and the followers.
func (o Options) memoryOnly() bool { return o.Dir == "" }

// Store is the activity log. Add is safe for concurrent use and never
// blocks; the records are written by the store's own goroutine.
type Store struct {
	o Options
	// queue holds added records until the writer takes them (every
	// batchEvery): a request costs an append under a lock, and wakes
	// no goroutine.
	qmu     sync.Mutex
	queue   []Pending
	spare   []Pending
	quit    chan struct{} // Close asks the writer to finish
	done    chan struct{} // the writer has finished
	dropped atomic.Int64
	lg      *slog.Logger

	mu      sync.Mutex // the files and the segment list
	segs    []segment  // oldest first
	cur     *os.File
	w       *bufio.Writer
	segRows int
	subs    map[chan Record]struct{}
	closed  bool
}

// segment is one file of records, named by the time of its first one.
type segment struct {
	path string
	rows int
	last time.Time // its newest record
}

const segPrefix, segSuffix = "activity-", ".jsonl"

// Open opens (or creates) the store in o.Dir, enforces retention on what
// is there and starts the writer.
func Open(o Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.memoryOnly() {
		s := &Store{o: o, quit: make(chan struct{}), done: make(chan struct{}), lg: o.Logger, subs: map[chan Record]struct{}{}}
		go s.run()
		return s, nil
	}
	if o.KeepRows < 1 || o.KeepDays < 1 {
		return nil, fmt.Errorf("activity: keep_rows and keep_days must be at least 1")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("activity log: %w", err)
	}
	s := &Store{o: o, quit: make(chan struct{}), done: make(chan struct{}), lg: o.Logger,
		segRows: max(1, min(10000, o.KeepRows/10)), subs: map[chan Record]struct{}{}}
	names, err := filepath.Glob(filepath.Join(o.Dir, segPrefix+"*"+segSuffix))
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // the names sort by time
	for _, n := range names {
		seg, err := scan(n)
		if err != nil {
			// Still managed: retention removes it when its time comes.
			s.lg.Warn("activity log: a segment could not be read; its records are left out", "file", n, "err", err)
		}
		s.segs = append(s.segs, seg)
	}
	s.mu.Lock()
	s.retainLocked()
	s.mu.Unlock()
	go s.run()
	return s, nil
}

// scan counts a segment's records and reads its newest one's time; when
// that cannot be read, the file's modification time stands in (no record
// in it is newer), so retention can still judge its age. The segment is
// returned with the error too.
func scan(path string) (segment, error) {
	seg := segment{path: path}
	if st, err := os.Stat(path); err == nil {
		seg.last = st.ModTime()
	}
	f, err := os.Open(path)
	if err != nil {
		return seg, err
	}
	defer f.Close()
	var last []byte
	_, err = eachLine(f, func(line []byte) {
		seg.rows++
		last = append(last[:0], line...)
	})
	var r Record
	if len(last) > 0 && json.Unmarshal(last, &r) == nil && !r.Time.IsZero() {
		seg.last = r.Time
	}
	return seg, err
}

// Add queues a finished request; when the queue is full (the disk is far
// behind) the record is dropped and counted, never waited for.
func (s *Store) Add(p Pending) {
	p.Record.cut()
	s.qmu.Lock()
	if len(s.queue) < maxQueue {
		s.queue = append(s.queue, p)
		s.qmu.Unlock()
		return
	}
	s.qmu.Unlock()
	s.dropped.Add(1)
}

// maxQueue bounds the records waiting for the writer.
const maxQueue = 8192

// Dropped is how many records were lost to a full queue.
func (s *Store) Dropped() int64 { return s.dropped.Load() }

// run writes queued records: a batch at a time, flushed when the queue is
// empty, so a quiet gantry has everything on disk within moments.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(time.Hour) // old segments go even when nothing is written
	defer tick.Stop()
	batch := time.NewTicker(batchEvery)
	defer batch.Stop()
	for {
		select {
		case <-s.quit:
			s.mu.Lock()
			s.drainLocked()
			if s.cur != nil {
				s.cur.Close()
				s.cur, s.w = nil, nil
			}
			s.mu.Unlock()
			return
		case <-batch.C:
			s.mu.Lock()
			s.drainLocked()
			s.mu.Unlock()
		case <-tick.C:
			s.mu.Lock()
			s.retainLocked()
			s.mu.Unlock()
		}
	}
}

// batchEvery is how often the writer takes the queue: how late a follower
// sees a record, and what a crash (not a stop: Close writes everything)
// can lose.
const batchEvery = 50 * time.Millisecond

// drainLocked writes what is queued, as one batch, and flushes it.
func (s *Store) drainLocked() {
	s.qmu.Lock()
	q := s.queue
	s.queue, s.spare = s.spare[:0], nil
	s.qmu.Unlock()
	if len(q) == 0 {
		s.spare = q
		return
	}
	for i := range q {
		s.writeLocked(q[i])
		q[i] = Pending{} // drop the references
	}
	s.flushLocked()
	s.qmu.Lock()
	if s.spare == nil {
		s.spare = q[:0]
	}
	s.qmu.Unlock()
}

func (s *Store) writeLocked(p Pending) {
	r := p.Finish()
	if s.o.OnRecord != nil {
		s.o.OnRecord(r)
	}
	if s.o.memoryOnly() {
		s.publishLocked(r)
		return
	}
	if s.cur == nil || s.segs[len(s.segs)-1].rows >= s.segRows {
		if err := s.rotateLocked(r.Time); err != nil {
			s.lg.Warn("activity log: cannot open a segment; the record is lost", "err", err)
			return
		}
	}
	b, _ := json.Marshal(r)
	s.w.Write(b)        //nolint:errcheck // seen at flush
	s.w.WriteByte('\n') //nolint:errcheck // seen at flush
	seg := &s.segs[len(s.segs)-1]
	seg.rows++
	seg.last = r.Time
	s.publishLocked(r)
}

// publishLocked hands a record to the followers.
func (s *Store) publishLocked(r Record) {
	for ch := range s.subs {
		select {
		case ch <- r:
		default: // a slow follower loses records, gantry does not wait
		}
	}
}

func (s *Store) flushLocked() {
	if s.w == nil {
		return
	}
	if err := s.w.Flush(); err != nil {
		s.lg.Warn("activity log: write failed", "err", err)
	}
}

// rotateLocked starts a new segment and enforces retention.
func (s *Store) rotateLocked(now time.Time) error {
	s.flushLocked()
	if s.cur != nil {
		s.cur.Close()
	}
	path := filepath.Join(s.o.Dir, fmt.Sprintf("%s%020d%s", segPrefix, now.UnixNano(), segSuffix))
	for _, sg := range s.segs { // two segments in one nanosecond (a coarse clock)
		if sg.path == path {
			path = strings.TrimSuffix(path, segSuffix) + "-1" + segSuffix
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.cur, s.w = nil, nil
		return err
	}
	s.cur, s.w = f, bufio.NewWriterSize(f, 64<<10)
	s.segs = append(s.segs, segment{path: path, last: now})
	s.retainLocked()
	return nil
}

// retainLocked removes the segments past keep_days, and the oldest ones
// while the rest still hold keep_rows.
func (s *Store) retainLocked() {
	if s.o.memoryOnly() {
		return
	}
	cut := s.o.Now().AddDate(0, 0, -s.o.KeepDays)
	total := 0
	for _, sg := range s.segs {
		total += sg.rows
	}
	keep := s.segs[:0]
	for i, sg := range s.segs {
		writing := s.cur != nil && i == len(s.segs)-1
		old := !sg.last.IsZero() && sg.last.Before(cut)
		surplus := total-sg.rows >= s.o.KeepRows
		if !writing && (old || surplus) {
			if err := os.Remove(sg.path); err != nil && !os.IsNotExist(err) {
				s.lg.Warn("activity log: cannot remove an old segment", "file", sg.path, "err", err)
			}
			total -= sg.rows
			continue
		}
		keep = append(keep, sg)
	}
	s.segs = keep
}

// Close writes what is queued and closes the files. What is added after
// Close is not written.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ch := range s.subs {
		close(ch)
		delete(s.subs, ch)
	}
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	return nil
}

// Subscribe returns every record written from now on, until cancel.
func (s *Store) Subscribe() (<-chan Record, func()) {
	ch := make(chan Record, 256)
	s.mu.Lock()
	if s.closed {
		close(ch)
	} else {
		s.subs[ch] = struct{}{}
	}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
		s.mu.Unlock()
	}
}

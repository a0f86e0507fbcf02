// Package fetch downloads a repository's files at one commit: several at
// once over a bounded number of connections, each resumable (a cut
// connection, a kill -9 of gantry, a reboot: it goes on where it
// stopped), each verified against the Hub's sha256 or git blob id before
// it is moved into place, with the free disk checked before the first
// byte and progress reported as it goes.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantryhq/gantry/internal/hub"
)

// Job is one download.
type Job struct {
	Client *hub.Client
	Repo   *hub.Repo
	Files  []hub.File
	Quant  string
	Layout Layout
	// Conns bounds the connections (and files) at once; default 4.
	Conns int
	// Events receives progress (nil: none). It is called from several
	// goroutines, one event at a time.
	Events func(Event)
	// Every is how often progress events come (default 500ms).
	Every time.Duration
}

// Event kinds.
const (
	EventPlan     = "plan"     // what will be fetched, before the first byte
	EventWait     = "wait"     // another download of this model holds the lock
	EventFile     = "file"     // a file begins (Done: bytes already there)
	EventProgress = "progress" // bytes so far, per file and overall
	EventVerified = "verified" // a file checked and in place
	EventRetry    = "retry"    // a connection failed; resuming
	EventDone     = "done"
	EventError    = "error"
)

// Event is one step of a download, as `get --json` prints it.
type Event struct {
	Type   string  `json:"type"`
	Repo   string  `json:"repo,omitempty"`
	Commit string  `json:"commit,omitempty"`
	Dest   string  `json:"dest,omitempty"`
	Path   string  `json:"path,omitempty"`
	Done   int64   `json:"done"`  // bytes of the file (or all files) there
	Total  int64   `json:"total"` // the file's (or all files') size
	Files  int     `json:"files,omitempty"`
	Rate   float64 `json:"rate,omitempty"` // bytes per second fetched, this run
	ETA    float64 `json:"eta_seconds,omitempty"`
	Msg    string  `json:"message,omitempty"`
	// Active lists the files being fetched, with their progress (progress
	// events).
	Active []FileProgress `json:"active,omitempty"`
}

// FileProgress is one file's bytes so far.
type FileProgress struct {
	Path  string `json:"path"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// Result says what a download did.
type Result struct {
	Dest    string `json:"dest"`
	Commit  string `json:"commit"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`   // all files' size
	Fetched int64  `json:"fetched"` // bytes that came over the network this run
	Reused  int64  `json:"reused"`  // bytes already there (complete files, parts)
}

// copyBuf is the bytes read from a connection at once (and the most a
// kill -9 can lose of what arrived: "one chunk").
const copyBuf = 1 << 20

// Run downloads the job's files.
func Run(ctx context.Context, j Job) (*Result, error) {
	if j.Conns <= 0 {
		j.Conns = 4
	}
	if j.Every <= 0 {
		j.Every = 500 * time.Millisecond
	}
	emit := j.events()
	src := &Source{Repo: j.Repo.Repo, Revision: j.Repo.Revision, Commit: j.Repo.Commit, Endpoint: j.Client.Endpoint,
		Quant: j.Quant, Started: time.Now().UTC()}
	for _, f := range j.Files {
		src.Files = append(src.Files, SourceFile{Path: f.Path, Size: f.Size, SHA256: f.SHA256, BlobID: f.BlobID})
	}
	unlock, err := lock(ctx, j.Layout, emit, j)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := j.Layout.Begin(src); err != nil {
		return nil, err
	}
	d := &download{j: j, emit: emit, res: &Result{Dest: j.Layout.Dir(), Commit: j.Repo.Commit, Files: len(j.Files)}}
	if err := d.plan(); err != nil {
		return nil, err
	}
	if err := d.fetchAll(ctx); err != nil {
		emit(Event{Type: EventError, Msg: err.Error()})
		return d.res, err
	}
	now := time.Now().UTC()
	src.Complete, src.Finished = true, &now
	if err := j.Layout.End(src); err != nil {
		return d.res, err
	}
	emit(Event{Type: EventDone, Done: d.res.Bytes, Total: d.res.Bytes, Files: len(j.Files), Dest: d.res.Dest,
		Msg: fmt.Sprintf("%d bytes fetched, %d were there", d.res.Fetched, d.res.Reused)})
	return d.res, nil
}

func (j Job) events() func(Event) {
	var mu sync.Mutex
	return func(e Event) {
		if j.Events == nil {
			return
		}
		if e.Repo == "" {
			e.Repo, e.Commit = j.Repo.Repo, j.Repo.Commit
		}
		mu.Lock()
		defer mu.Unlock()
		j.Events(e)
	}
}

// lock takes the model's lock: one download per model, across gantry
// processes; a second one waits and then finds the files there.
func lock(ctx context.Context, l Layout, emit func(Event), j Job) (func(), error) {
	p := l.LockPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		holder, _ := os.ReadFile(p)
		emit(Event{Type: EventWait, Dest: l.Dir(), Msg: fmt.Sprintf("another download of %s holds %s (%s); waiting for it", j.Repo.Repo, p, strings.TrimSpace(string(holder)))})
		got := make(chan error, 1)
		go func() { got <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
		select {
		case err := <-got:
			if err != nil {
				f.Close()
				return nil, err
			}
		case <-ctx.Done():
			f.Close() // the blocked flock returns with EBADF
			return nil, ctx.Err()
		}
	}
	f.Truncate(0)
	f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

type download struct {
	j    Job
	emit func(Event)
	res  *Result
	todo []hub.File

	began   time.Time
	fetched atomic.Int64
	mu      sync.Mutex
	active  map[string]*FileProgress
	done    int64 // bytes of finished files and of parts as they resume
}

// plan works out what is there already and checks the free disk before
// the first byte.
func (d *download) plan() error {
	need := int64(0)
	for _, f := range d.j.Files {
		d.res.Bytes += f.Size
		if d.j.Layout.Have(f) {
			d.res.Reused += f.Size
			continue
		}
		d.todo = append(d.todo, f)
		need += f.Size
		if st, err := os.Stat(d.j.Layout.Part(f)); err == nil {
			need -= min(st.Size(), f.Size)
		}
	}
	d.done = d.res.Reused
	free := FreeDisk(d.j.Layout.Dir())
	d.emit(Event{Type: EventPlan, Dest: d.j.Layout.Dir(), Files: len(d.j.Files), Done: d.res.Reused, Total: d.res.Bytes,
		Msg: fmt.Sprintf("%d of %d files to fetch (%s); %s free at %s", len(d.todo), len(d.j.Files), size(need), size(free), d.j.Layout.Dir())})
	if free >= 0 && need > free {
		return fmt.Errorf("not enough disk at %s: the download needs %s more, %s is free — free some space, or get it elsewhere (--root, or --to hf-cache)",
			d.j.Layout.Dir(), size(need), size(free))
	}
	return nil
}

func size(n int64) string {
	const unit = 1024
	if n < 0 {
		return "unknown"
	}
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f%s", v, []string{"B", "KiB", "MiB", "GiB", "TiB"}[u])
}

// fetchAll runs the files through Conns workers, largest first (so the
// long one starts early), and reports progress on a ticker. A file that
// fails its digest does not stop the others (the next run fetches it
// alone); any other failure stops them all.
func (d *download) fetchAll(ctx context.Context) error {
	sort.SliceStable(d.todo, func(a, b int) bool { return d.todo[a].Size > d.todo[b].Size })
	d.began, d.active = time.Now(), map[string]*FileProgress{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	files := make(chan hub.File)
	errs := make(chan error, len(d.todo))
	var wg sync.WaitGroup
	for range min(d.j.Conns, len(d.todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range files {
				if err := d.fetch(ctx, f); err != nil {
					errs <- err
					if !errors.Is(err, errMismatch) {
						cancel() // the Hub refused, or the disk failed: the others would too
					}
				}
			}
		}()
	}
	tick := time.NewTicker(d.j.Every)
	defer tick.Stop()
	stopTicks := make(chan struct{})
	go func() {
		for {
			select {
			case <-tick.C:
				d.progress()
			case <-stopTicks:
				return
			}
		}
	}()
	for _, f := range d.todo {
		select {
		case files <- f:
		case <-ctx.Done():
		}
	}
	close(files)
	wg.Wait()
	close(stopTicks)
	close(errs)
	var all []error
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			all = append(all, err)
		}
	}
	if len(all) > 0 {
		return errors.Join(all...)
	}
	return ctx.Err()
}

func (d *download) progress() {
	d.mu.Lock()
	ev := Event{Type: EventProgress, Done: d.done, Total: d.res.Bytes, Files: len(d.j.Files)}
	for _, p := range d.active {
		ev.Active = append(ev.Active, *p)
		ev.Done += p.Done
	}
	d.mu.Unlock()
	sort.Slice(ev.Active, func(a, b int) bool { return ev.Active[a].Path < ev.Active[b].Path })
	if secs := time.Since(d.began).Seconds(); secs > 0 {
		ev.Rate = float64(d.fetched.Load()) / secs
		if ev.Rate > 0 {
			ev.ETA = float64(ev.Total-ev.Done) / ev.Rate
		}
	}
	d.emit(ev)
}

// fetch downloads one file into its part (resuming), verifies it and
// places it. A connection that fails mid-file is retried from where it
// stopped, five times without progress at most.
func (d *download) fetch(ctx context.Context, f hub.File) error {
	p, err := openPart(f, d.j.Layout.Part(f))
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	d.res.addReused(p.have)
	fp := &FileProgress{Path: f.Path, Done: p.have, Total: f.Size}
	d.mu.Lock()
	d.active[f.Path] = fp
	d.mu.Unlock()
	d.emit(Event{Type: EventFile, Path: f.Path, Done: p.have, Total: f.Size})
	failures := 0
	for p.have < f.Size {
		before := p.have
		err := d.copyRange(ctx, p, fp)
		if err == nil {
			continue
		}
		if ctx.Err() != nil || isFinal(err) {
			p.file.Close()
			return err
		}
		if p.have > before {
			failures = 0
		}
		failures++
		if failures > 5 {
			p.file.Close()
			return fmt.Errorf("%s: %w (after 5 tries without progress)", f.Path, err)
		}
		d.emit(Event{Type: EventRetry, Path: f.Path, Done: p.have, Total: f.Size, Msg: err.Error()})
		select {
		case <-time.After(time.Duration(failures-1) * time.Second):
		case <-ctx.Done():
			p.file.Close()
			return ctx.Err()
		}
	}
	err = p.finish()
	if err == nil {
		err = d.j.Layout.Place(f)
	}
	d.mu.Lock()
	delete(d.active, f.Path)
	if err == nil {
		d.done += f.Size
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.emit(Event{Type: EventVerified, Path: f.Path, Done: f.Size, Total: f.Size})
	return nil
}

func (r *Result) addReused(n int64) { atomic.AddInt64(&r.Reused, n) }

// isFinal says an error will not go away by trying again: the Hub
// refused (401, 403, 404), or the bytes are wrong.
func isFinal(err error) bool {
	var he *hub.Error
	if errors.As(err, &he) {
		return he.Kind != hub.Unreachable && he.Kind != hub.Server
	}
	return errors.Is(err, errMismatch)
}

// copyRange fetches the file from where the part ends.
func (d *download) copyRange(ctx context.Context, p *part, fp *FileProgress) error {
	body, err := d.j.Client.Open(ctx, d.j.Repo, p.f.Path, p.have, 0)
	if err != nil {
		return err
	}
	defer body.Close()
	buf := make([]byte, copyBuf)
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if err := p.write(buf[:n]); err != nil {
				return err
			}
			d.fetched.Add(int64(n))
			atomic.AddInt64(&d.res.Fetched, int64(n))
			d.mu.Lock()
			fp.Done = p.have
			d.mu.Unlock()
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF && p.have == p.f.Size:
			if p.have < p.f.Size {
				return fmt.Errorf("%s: the connection ended at %d of %d bytes", p.f.Path, p.have, p.f.Size)
			}
			return nil
		case rerr != nil:
			return fmt.Errorf("%s: %w", p.f.Path, rerr)
		}
	}
}

package fetch

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Manager runs downloads in a long-lived process (the daemon): one per
// destination, however many ask for it; each asker follows its events
// and waits for its end. A download runs on the manager's context, not
// the asker's: a client that goes away does not stop it.
type Manager struct {
	ctx     context.Context
	mu      sync.Mutex
	running map[string]*Download
	recent  []*Download
}

// NewManager makes a manager whose downloads stop when ctx ends.
func NewManager(ctx context.Context) *Manager {
	return &Manager{ctx: ctx, running: map[string]*Download{}}
}

// Download is one download of the manager.
type Download struct {
	Repo   string    `json:"repo"`
	Commit string    `json:"commit"`
	Dest   string    `json:"dest"`
	Began  time.Time `json:"began"`
	// Last is its latest event (a progress event while it runs).
	Last  Event   `json:"last"`
	Res   *Result `json:"result,omitempty"`
	Error string  `json:"error,omitempty"`

	mu   sync.Mutex
	subs map[int]func(Event)
	next int
	done chan struct{}
}

// Start runs j unless a download to the same place runs already; then
// it returns that one (shared true).
func (m *Manager) Start(j Job) (d *Download, shared bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dest := j.Layout.Dir()
	if d := m.running[dest]; d != nil {
		return d, true
	}
	d = &Download{Repo: j.Repo.Repo, Commit: j.Repo.Commit, Dest: dest, Began: time.Now().UTC(),
		subs: map[int]func(Event){}, done: make(chan struct{})}
	m.running[dest] = d
	inner := j.Events
	j.Events = func(e Event) {
		if inner != nil {
			inner(e)
		}
		d.publish(e)
	}
	go func() {
		res, err := Run(m.ctx, j)
		m.mu.Lock()
		delete(m.running, dest)
		m.recent = append(m.recent, d)
		if len(m.recent) > 20 {
			m.recent = m.recent[1:]
		}
		m.mu.Unlock()
		d.mu.Lock()
		d.Res = res
		if err != nil {
			d.Error = err.Error()
		}
		d.mu.Unlock()
		close(d.done)
	}()
	return d, false
}

func (d *Download) publish(e Event) {
	d.mu.Lock()
	d.Last = e
	subs := make([]func(Event), 0, len(d.subs))
	for _, s := range d.subs {
		subs = append(subs, s)
	}
	d.mu.Unlock()
	for _, s := range subs {
		s(e)
	}
}

// Follow calls fn with each event until the returned stop is called.
func (d *Download) Follow(fn func(Event)) (stop func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := d.next
	d.next++
	d.subs[id] = fn
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.subs, id)
	}
}

// Done is closed when the download has ended.
func (d *Download) Done() <-chan struct{} { return d.done }

// Outcome is the result and error once Done.
func (d *Download) Outcome() (*Result, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Res, d.Error
}

// List is the downloads running, then the last ended ones, newest first.
func (m *Manager) List() []Download {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Download
	for _, d := range m.running {
		out = append(out, d.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Began.After(out[j].Began) })
	for i := len(m.recent) - 1; i >= 0; i-- {
		out = append(out, m.recent[i].snapshot())
	}
	return out
}

func (d *Download) snapshot() Download {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Download{Repo: d.Repo, Commit: d.Commit, Dest: d.Dest, Began: d.Began, Last: d.Last, Res: d.Res, Error: d.Error}
}

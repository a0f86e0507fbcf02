package supervise

import (
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An engine writes straight into its log file, so gantry is not in the
// path of its bytes; a poll every 250 ms let a fast engine write 150 MB
// into a 20 MiB log in between. The kernel tells gantry of every write
// instead (inotify IN_MODIFY), and a log past its size is rotated then.
// One inotify instance serves every log of the process (the instances a
// user may hold are few: 128 by default).

type logWatcher struct {
	mu   sync.Mutex
	f    *os.File // the inotify instance, read through Go's poller
	logs map[int32][]*Log
}

var (
	watcherOnce sync.Once
	watcher     *logWatcher // nil when inotify is not there: polls still rotate
)

func theWatcher() *logWatcher {
	watcherOnce.Do(func() {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return
		}
		watcher = &logWatcher{f: os.NewFile(uintptr(fd), "inotify"), logs: map[int32][]*Log{}}
		go watcher.run()
	})
	return watcher
}

// watch wakes l on every write to its file; the returned function stops
// that. A file that cannot be watched is rotated by the polls alone.
func watchLog(l *Log) (stop func()) {
	w := theWatcher()
	if w == nil {
		return func() {}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), l.path, unix.IN_MODIFY|unix.IN_DONT_FOLLOW)
	if err != nil {
		return func() {}
	}
	id := int32(wd)
	w.logs[id] = append(w.logs[id], l) // two Logs of one file share its watch
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		ls := w.logs[id]
		for i, o := range ls {
			if o == l {
				ls = append(ls[:i:i], ls[i+1:]...)
				break
			}
		}
		if len(ls) > 0 {
			w.logs[id] = ls
			return
		}
		delete(w.logs, id)
		unix.InotifyRmWatch(int(w.f.Fd()), uint32(id)) //nolint:errcheck // the file may be gone
	}
}

// run hands every batch of events to the logs they name. The kernel
// merges a file's events while they wait, so a burst of writes costs one
// look at the size.
func (w *logWatcher) run() {
	// Events name no file (the watches are on files): 16 bytes each, and
	// a read returns as many as fit. 64 KiB here went on this goroutine's
	// stack, which then held 128 KiB for gantry's life.
	buf := make([]byte, 4<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		seen := map[int32]bool{}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			seen[ev.Wd] = true
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		w.mu.Lock()
		var wake []*Log
		for wd := range seen {
			wake = append(wake, w.logs[wd]...)
		}
		w.mu.Unlock()
		for _, l := range wake {
			l.written()
		}
	}
}

package supervise

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// collapseUnit is the step in which a log's head is cut: the kernel cuts
// whole file-system blocks, and 64 KiB is a whole number of the blocks
// ext4 and XFS use (4 KiB, up to 64 KiB with 64 KiB pages).
const collapseUnit = 64 << 10

// rotate moves the log's older output into path.1 (shifting the older
// copies up to path.keep) and shortens the file, without losing what the
// engine writes meanwhile: it appends straight into the file through its
// own handle, at any moment, and gantry cannot pause it.
//
// Where the file system can cut a file's head (fallocate's
// FALLOC_FL_COLLAPSE_RANGE: ext4 and XFS, DGX OS's own), the bytes memory
// has already read are copied and then cut from the head, in whole
// collapseUnits. The kernel cuts under the file's lock, so an append lands
// after the bytes that stay, before or after the cut: nothing the engine
// writes is lost or doubled. The copy and the file join where the cut fell,
// mid-line perhaps: `cat path.1 path` is the output whole.
//
// Elsewhere (tmpfs, btrfs) and for a size under 4 collapseUnits, the file
// is copied to its end, read into memory, and truncated at once; what the
// engine writes in the instant between that last read and the truncation
// is lost (the way logrotate's copytruncate loses it).
//
// A copy holds at most maxBytes of the file (what the engine wrote during
// the copy may follow): when the engine wrote more before gantry came
// round, the copy keeps the newest output, after a mark of what was cut.
// Neither the copy nor the cut goes through a symbolic link.
func (l *Log) rotate() {
	f, err := os.OpenFile(l.path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return
	}
	collapse := !l.noCollapse && l.maxBytes >= 4*collapseUnit
	cut := st.Size()
	if collapse {
		// Only what memory has read leaves the file (the next poll reads
		// the rest), and a byte at least stays: the kernel refuses a cut
		// that reaches the file's end.
		if cut = min(l.off, cut-1) / collapseUnit * collapseUnit; cut <= 0 {
			return
		}
	}
	var dst *os.File
	if l.keep > 0 {
		l.shiftCopies()
		if dst, err = copyTail(f, l.path+".1", cut, l.maxBytes); err != nil {
			return
		}
		defer func() {
			if dst != nil {
				dst.Close()
			}
		}()
	}
	if collapse {
		l.shortening()
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, cut)
		if err == nil {
			l.off -= cut
			return
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			l.noCollapse = true // this file system cannot: from now on, truncate
		}
	}
	dst = l.truncate(f, dst, cut)
}

// shortening runs the tests' hook at the moment before the file shrinks.
func (l *Log) shortening() {
	if l.beforeShorten != nil {
		l.beforeShorten()
	}
}

// truncate empties the file once what it holds beyond copied is in the
// copy dst (nil: none kept) and everything is in memory: it copies and
// reads in rounds until a look finds nothing new, and truncates right
// after that look. It returns the copy, which it may have made anew.
func (l *Log) truncate(f, dst *os.File, copied int64) *os.File {
	l.readTo(f, copied)
	for range 8 {
		st, err := f.Stat()
		if err != nil || st.Size() <= copied {
			break
		}
		end := st.Size()
		if dst != nil {
			dst = l.extendCopy(f, dst, copied, end)
		}
		l.readTo(f, end)
		copied = end
	}
	l.shortening()
	if f.Truncate(0) == nil {
		l.off = 0
	}
	return dst
}

// extendCopy appends f's bytes [from, to) to the copy dst; when that would
// take the copy past its size, it makes the copy anew from the newest
// output that fits (nil when it cannot).
func (l *Log) extendCopy(f, dst *os.File, from, to int64) *os.File {
	if st, err := dst.Stat(); err == nil && (l.maxBytes <= 0 || st.Size()+to-from <= l.maxBytes) {
		io.Copy(dst, io.NewSectionReader(f, from, to-from)) //nolint:errcheck // best effort: the copy is a courtesy
		return dst
	}
	dst.Close()
	dst, err := copyTail(f, l.path+".1", to, l.maxBytes)
	if err != nil {
		return nil
	}
	return dst
}

// shiftCopies renames path.1 … path.keep-1 one up (path.keep is replaced).
func (l *Log) shiftCopies() {
	for i := l.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1)) //nolint:errcheck // may not exist
	}
}

// copyTail copies src's first upTo bytes to a new file at to, whole when
// they fit in limit bytes (0: no limit); else their last lines that do,
// after a line that says how much was cut. It returns the copy, open for
// appending.
func copyTail(src *os.File, to string, upTo, limit int64) (*os.File, error) {
	os.Remove(to) //nolint:errcheck // a link or an old copy: replaced, never followed
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, err
	}
	start := int64(0)
	if limit > 0 && upTo > limit {
		const markRoom = 200
		start = upTo - limit + markRoom
		head := make([]byte, MaxLine)
		n, _ := src.ReadAt(head, start)
		if i := bytes.IndexByte(head[:n], '\n'); i >= 0 {
			start += int64(i + 1)
		}
		start = min(start, upTo)
		fmt.Fprintf(dst, "[gantry] … %s cut here: the engine wrote faster than its log rotates (logs keep %s a file)\n", sizeWords(start), sizeWords(limit))
	}
	if _, err := io.Copy(dst, io.NewSectionReader(src, start, upTo-start)); err != nil {
		dst.Close()
		return nil, err
	}
	return dst, nil
}

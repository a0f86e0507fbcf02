package fetch

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/statefile"
)

// A part file keeps the bytes of one file as they arrive; beside it,
// <part>.state says how far they are synced to disk and the digest's
// state there, and the boot they were written in. After a kill -9 the
// part's every byte is in the page cache and counts; after a reboot only
// what was synced does (the rest may be garbage: it is cut off).

// syncEvery is how many bytes arrive between two syncs of a part.
const syncEvery = 64 << 20

// bootID names this boot of the machine; a unit test replaces it.
var bootID = func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

type partState struct {
	Boot   string `json:"boot"`
	Synced int64  `json:"synced"`
	Digest []byte `json:"digest"` // the hash's state at Synced
	SHA256 string `json:"sha256,omitempty"`
	BlobID string `json:"blob_id"`
}

// digest is what a file is checked against: an LFS file's sha256, else
// git's blob id (sha1 of "blob <size>\0" and the content).
func newDigest(f hub.File) hash.Hash {
	if f.SHA256 != "" {
		return sha256.New()
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", f.Size)
	return h
}

func wantDigest(f hub.File) string {
	if f.SHA256 != "" {
		return f.SHA256
	}
	return f.BlobID
}

// part is one file's part on disk, open for appending.
type part struct {
	f      hub.File
	path   string
	file   *os.File
	h      hash.Hash
	have   int64 // bytes in the part (and in h)
	synced int64
}

// openPart opens (or creates) f's part at path and works out where to
// resume: the digest's saved state, and the bytes after it read back
// from disk (no byte comes from the network twice).
func openPart(f hub.File, path string) (*part, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	p := &part{f: f, path: path, file: file, h: newDigest(f)}
	if err := p.resume(); err != nil {
		file.Close()
		return nil, err
	}
	return p, nil
}

func (p *part) statePath() string { return p.path + ".state" }

func (p *part) resume() error {
	st, err := p.file.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	var s partState
	b, err := os.ReadFile(p.statePath())
	ok := err == nil && json.Unmarshal(b, &s) == nil && s.SHA256 == p.f.SHA256 && s.BlobID == p.f.BlobID
	switch {
	case !ok:
		// No state, or a state of other content: start over.
		s = partState{}
		size = 0
	case s.Boot != bootID():
		// A reboot: only the synced bytes are sure.
		size = min(size, s.Synced)
	}
	if size > p.f.Size {
		size = 0
		s = partState{}
	}
	from := int64(0)
	if s.Synced > 0 && s.Synced <= size {
		if u, ok := p.h.(encoding.BinaryUnmarshaler); ok && u.UnmarshalBinary(s.Digest) == nil {
			from = s.Synced
		} else {
			p.h = newDigest(p.f)
		}
	}
	if err := p.file.Truncate(size); err != nil {
		return err
	}
	if _, err := io.Copy(p.h, io.NewSectionReader(p.file, from, size-from)); err != nil {
		return err
	}
	p.have, p.synced = size, from
	if _, err := p.file.Seek(size, io.SeekStart); err != nil {
		return err
	}
	return p.sync()
}

// write appends bytes that arrived; every syncEvery bytes it syncs.
func (p *part) write(b []byte) error {
	if p.have+int64(len(b)) > p.f.Size {
		return fmt.Errorf("%s: more bytes came than the file has (%d)", p.f.Path, p.f.Size)
	}
	if _, err := p.file.Write(b); err != nil {
		return err
	}
	p.h.Write(b)
	p.have += int64(len(b))
	if p.have-p.synced >= syncEvery {
		return p.sync()
	}
	return nil
}

// sync makes the bytes so far durable, records the digest's state and
// lets the page cache drop them: a download must not fill the memory
// engines share (on unified memory, CUDA's free memory shrinks with the
// page cache).
func (p *part) sync() error {
	if err := p.file.Sync(); err != nil {
		return err
	}
	unix.Fadvise(int(p.file.Fd()), 0, p.have, unix.FADV_DONTNEED) //nolint:errcheck // advice only
	m, ok := p.h.(encoding.BinaryMarshaler)
	if !ok {
		return nil
	}
	d, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	p.synced = p.have
	return statefile.WriteJSON(p.statePath(), partState{Boot: bootID(), Synced: p.have, Digest: d, SHA256: p.f.SHA256, BlobID: p.f.BlobID})
}

// errMismatch says a file's bytes are not the ones the Hub lists.
var errMismatch = errors.New("digest mismatch")

// finish checks the part against the Hub's digest: a mismatch removes it
// (and says which file); a match leaves it ready to be placed.
func (p *part) finish() error {
	defer p.file.Close()
	if p.have != p.f.Size {
		return fmt.Errorf("%s: %d of %d bytes", p.f.Path, p.have, p.f.Size)
	}
	if err := p.file.Sync(); err != nil {
		return err
	}
	got, want := hex.EncodeToString(p.h.Sum(nil)), wantDigest(p.f)
	if got != want {
		p.remove()
		kind := "sha256"
		if p.f.SHA256 == "" {
			kind = "git blob id"
		}
		return fmt.Errorf("%w: %s has %s %s, the Hub lists %s: the file was deleted; run get again to fetch it afresh", errMismatch, p.f.Path, kind, got, want)
	}
	os.Remove(p.statePath())
	return nil
}

func (p *part) remove() {
	p.file.Close()
	os.Remove(p.path)
	os.Remove(p.statePath())
}

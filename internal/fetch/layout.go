package fetch

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/gantryhq/gantry/internal/hfcache"
	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/statefile"
)

// Layout is where a download's files go.
type Layout interface {
	// Dir is the folder the model is served from once complete.
	Dir() string
	// Final is where a file's verified bytes end up; Part where they
	// arrive until then (on the same file system, so the move is a rename).
	Final(f hub.File) string
	Part(f hub.File) string
	// Place moves a verified part into place.
	Place(f hub.File) error
	// Have says whether f is already in place, verified.
	Have(f hub.File) bool
	// Begin prepares the folders and records the download's start; End
	// records it complete.
	Begin(src *Source) error
	End(src *Source) error
	// LockPath is the file whose lock one download of this model holds.
	LockPath() string
}

// Folder is the seed's layout: the repository's files under one folder
// (<root>/models/<family>/<name>), parts under .gantry-partial/ beside
// them, the record in .gantry-source.json.
type Folder struct {
	Path string
	mu   sync.Mutex
	src  *Source
	// done are the files the record lists as verified (size and digest).
	done map[string]SourceFile
}

// Dir is the model's folder.
func (l *Folder) Dir() string { return l.Path }

func (l *Folder) partDir() string { return filepath.Join(l.Path, ".gantry-partial") }

// Final is the file's place in the folder.
func (l *Folder) Final(f hub.File) string { return filepath.Join(l.Path, filepath.FromSlash(f.Path)) }

// Part is where its bytes arrive.
func (l *Folder) Part(f hub.File) string {
	return filepath.Join(l.partDir(), filepath.FromSlash(f.Path)+".part")
}

// Place renames the part into the folder.
func (l *Folder) Place(f hub.File) error {
	dst := l.Final(f)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(l.Part(f), dst); err != nil {
		return err
	}
	l.mu.Lock()
	l.done[f.Path] = SourceFile{Path: f.Path, Size: f.Size, SHA256: f.SHA256, BlobID: f.BlobID, Verified: true}
	l.mu.Unlock()
	// The record says so at once: a run stopped after this one keeps it.
	return l.save(l.src)
}

// Have is true for a file the record lists as verified, with the same
// digest and size, and that is there with that size.
func (l *Folder) Have(f hub.File) bool {
	l.mu.Lock()
	d, ok := l.done[f.Path]
	l.mu.Unlock()
	if !ok || d.Size != f.Size || d.SHA256 != f.SHA256 || d.BlobID != f.BlobID {
		return false
	}
	st, err := os.Stat(l.Final(f))
	return err == nil && st.Size() == f.Size
}

// Begin makes the folders and writes the record (incomplete), keeping
// what an earlier run verified.
func (l *Folder) Begin(src *Source) error {
	if err := os.MkdirAll(l.partDir(), 0o755); err != nil {
		return err
	}
	l.done, l.src = map[string]SourceFile{}, src
	if old, err := ReadSource(l.Path); err == nil && old.Commit == src.Commit {
		for _, f := range old.Files {
			if f.Verified {
				l.done[f.Path] = f
			}
		}
	}
	return l.save(src)
}

// save writes the record: src with the files verified so far.
func (l *Folder) save(src *Source) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := *src
	out.Files = nil
	for _, f := range src.Files {
		if d, ok := l.done[f.Path]; ok && d.Size == f.Size && d.SHA256 == f.SHA256 {
			f.Verified = true
		}
		out.Files = append(out.Files, f)
	}
	return statefile.WriteJSON(filepath.Join(l.Path, SourceName), &out)
}

// End writes the complete record and removes the parts' folder.
func (l *Folder) End(src *Source) error {
	if err := l.save(src); err != nil {
		return err
	}
	os.Remove(filepath.Join(l.partDir(), ".lock"))
	return os.RemoveAll(l.partDir())
}

// LockPath is in the parts' folder.
func (l *Folder) LockPath() string { return filepath.Join(l.partDir(), ".lock") }

// HFCache is the Hugging Face cache's layout, as huggingface_hub writes it
// (file_download.py _hf_hub_download_to_cache_dir): models--org--name/
// with blobs/<etag> (an LFS file's sha256, else its git blob id),
// snapshots/<commit>/<path> linking to ../../blobs/<etag>, and
// refs/<revision> holding the commit. scan_cache_dir reads it, and an
// engine finds the model by name with HF_HUB_OFFLINE=1.
type HFCache struct {
	Cache  string // $HF_HUB_CACHE
	Repo   string // org/name
	Commit string
}

// RepoDir is models--org--name.
func (l *HFCache) RepoDir() string {
	return filepath.Join(l.Cache, hfcache.RepoFolder(l.Repo))
}

// Dir is the snapshot folder.
func (l *HFCache) Dir() string { return filepath.Join(l.RepoDir(), "snapshots", l.Commit) }

func etag(f hub.File) string {
	if f.SHA256 != "" {
		return f.SHA256
	}
	return f.BlobID
}

// Final is the blob.
func (l *HFCache) Final(f hub.File) string { return filepath.Join(l.RepoDir(), "blobs", etag(f)) }

// Part is the blob's part file (huggingface_hub's own are named
// <etag>.<random>.incomplete; this name is gantry's).
func (l *HFCache) Part(f hub.File) string { return l.Final(f) + ".gantry-part" }

func (l *HFCache) link(f hub.File) string {
	return filepath.Join(l.Dir(), filepath.FromSlash(f.Path))
}

// Place renames the part to its blob and links the snapshot's path to it
// (relative, as huggingface_hub links them).
func (l *HFCache) Place(f hub.File) error {
	if err := os.Rename(l.Part(f), l.Final(f)); err != nil {
		return err
	}
	return l.linkBlob(f)
}

func (l *HFCache) linkBlob(f hub.File) error {
	ln := l.link(f)
	if err := os.MkdirAll(filepath.Dir(ln), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(ln), l.Final(f))
	if err != nil {
		return err
	}
	os.Remove(ln)
	return os.Symlink(rel, ln)
}

// Have is true when the blob is there with the file's size (a blob is
// named by its digest); its link is made if missing.
func (l *HFCache) Have(f hub.File) bool {
	st, err := os.Stat(l.Final(f))
	if err != nil || st.Size() != f.Size {
		return false
	}
	if _, err := os.Stat(l.link(f)); err != nil {
		return l.linkBlob(f) == nil
	}
	return true
}

// Begin makes blobs/, snapshots/<commit>/ and refs/<revision>.
func (l *HFCache) Begin(src *Source) error {
	for _, d := range []string{filepath.Join(l.RepoDir(), "blobs"), l.Dir(), filepath.Join(l.RepoDir(), "refs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if src.Revision != src.Commit && src.Revision != "" {
		ref := filepath.Join(l.RepoDir(), "refs", filepath.FromSlash(src.Revision))
		if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
			return err
		}
		tmp := ref + ".gantry-tmp"
		if err := os.WriteFile(tmp, []byte(src.Commit), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, ref); err != nil {
			return err
		}
	}
	return nil
}

// End has nothing to record: the cache's own layout says it all.
func (l *HFCache) End(*Source) error { return nil }

// LockPath is beside the repository's folders (huggingface_hub locks in
// <cache>/.locks/; gantry's lock is its own).
func (l *HFCache) LockPath() string { return filepath.Join(l.RepoDir(), ".gantry-lock") }

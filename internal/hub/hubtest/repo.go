// Package hubtest is a stand-in for the Hugging Face Hub, for tests: an
// HTTP server that speaks the routes and headers the official client
// (huggingface_hub, pinned in ./test.sh) uses, serves repositories built
// from real files or from sparse checkpoints (a real safetensors header,
// zeros after it), counts the bytes it serves, and cuts, throttles,
// corrupts or refuses on demand. It is a test helper, not a gantry feature:
// nothing outside tests and the bench imports it.
//
// What it answers, and where each behaviour comes from (huggingface_hub
// 2.4.0 from PyPI; the paths are in its wheel):
//
//   - GET /api/models/{repo}[/revision/{rev}][?blobs=true]: the model info
//     (hf_api.py HfApi.model_info: "blobs" is files_metadata; ModelInfo and
//     RepoSibling read id, sha, private, gated, siblings[].rfilename, size,
//     blobId, lfs{size,sha256,pointerSize}).
//   - GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=…: the file
//     listing snapshot_download reads (hf_api.py _iter_repo_tree_pages;
//     RepoFile reads type, path, size, oid, lfs{oid,size,pointerSize}).
//   - HEAD and GET /{repo}/resolve/{rev}/{file}: a plain file answers 200
//     with ETag (its git blob id), X-Repo-Commit and the bytes; an LFS file
//     answers 302 to the CDN origin with X-Repo-Commit, X-Linked-Etag (its
//     sha256) and X-Linked-Size (file_download.py get_hf_file_metadata, and
//     utils/_http.py _httpx2_follow_hub_redirects_with_backoff, which
//     follows redirects only on the same origin and drops the token
//     otherwise).
//   - Range: bytes=N- and N-M on every file (file_download.py http_get
//     resumes a cut download with one).
//   - Errors with X-Error-Code RepoNotFound, RevisionNotFound,
//     EntryNotFound, GatedRepo and their statuses (utils/_http.py
//     hf_raise_for_status; errors.py GatedRepoError's example message).
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gantryhq/gantry/internal/gguf"
)

// File is one file of a repository at one commit.
type File struct {
	// Path is the file's path in the repository ("a/b.json").
	Path string
	// LFS says the file is stored with Git LFS (the Hub then answers its
	// resolve with a redirect to the CDN and lists its sha256).
	LFS  bool
	size int64
	data io.ReaderAt
	// weightsAt is where weight bytes start (the safetensors data section,
	// a GGUF's tensor data); -1 when the file holds none.
	weightsAt int64
	// hashCache, when set, keeps the sha256 of large files between runs.
	hashCache string

	once   sync.Once
	sha256 string
	oid    string
	err    error
}

// Size is the file's size in bytes.
func (f *File) Size() int64 { return f.size }

// WeightsAt is the offset where the file's weight bytes begin, -1 for none.
func (f *File) WeightsAt() int64 { return f.weightsAt }

// ReadAt reads the file's content.
func (f *File) ReadAt(p []byte, off int64) (int, error) { return f.data.ReadAt(p, off) }

// Bytes is a file with the given content.
func Bytes(p string, data []byte) *File {
	return &File{Path: p, size: int64(len(data)), data: strings.NewReader(string(data)), LFS: lfsTracked(p), weightsAt: -1}
}

// Sparse is a file of size bytes: head, then zeros (a checkpoint's real
// header over weights that cost no memory or disk). weightsAt is where the
// weights begin.
func Sparse(p string, head []byte, size, weightsAt int64) *File {
	return &File{Path: p, size: size, data: zerosAfter{head: head, size: size}, LFS: lfsTracked(p), weightsAt: weightsAt}
}

// OnDisk is a file whose content is the file at osPath (read when served).
func OnDisk(p, osPath string) (*File, error) {
	f, err := os.Open(osPath)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{Path: p, size: st.Size(), data: f, LFS: lfsTracked(p), weightsAt: -1}, nil
}

// Dir reads every regular file under dir (dot files and folders aside) as
// files of a repository; safetensors and GGUF files get their weight
// offset from their headers.
func Dir(dir string) ([]*File, error) {
	var out []*File
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		f, err := OnDisk(filepath.ToSlash(rel), p)
		if err != nil {
			return err
		}
		f.weightsAt = weightOffset(f)
		out = append(out, f)
		return nil
	})
	return out, err
}

type zerosAfter struct {
	head []byte
	size int64
}

func (z zerosAfter) ReadAt(p []byte, off int64) (int, error) {
	if off >= z.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off+int64(n) < z.size {
		o := off + int64(n)
		if o < int64(len(z.head)) {
			n += copy(p[n:], z.head[o:])
			continue
		}
		k := min(int64(len(p)-n), z.size-o)
		clear(p[n : n+int(k)])
		n += int(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// hashes works out the file's sha256 and git blob id (of its content, or
// of its LFS pointer file), once.
func (f *File) hashes() (sha string, oid string, err error) {
	f.once.Do(func() {
		f.sha256, f.err = f.contentSHA256()
		if f.err != nil {
			return
		}
		if f.LFS {
			f.oid = gitBlobID([]byte(f.pointer()))
			return
		}
		h := sha1.New()
		fmt.Fprintf(h, "blob %d\x00", f.size)
		if _, err := io.Copy(h, io.NewSectionReader(f.data, 0, f.size)); err != nil {
			f.err = err
			return
		}
		f.oid = hex.EncodeToString(h.Sum(nil))
	})
	return f.sha256, f.oid, f.err
}

// contentSHA256 hashes the content; large sparse files are slow to hash
// (about 1.5 GB/s), so their digest is kept under hashCache, keyed by
// their head and size.
func (f *File) contentSHA256() (string, error) {
	key := ""
	if z, ok := f.data.(zerosAfter); ok && f.hashCache != "" {
		k := sha256.Sum256(z.head)
		key = filepath.Join(f.hashCache, fmt.Sprintf("%x-%d", k[:12], z.size))
		if b, err := os.ReadFile(key); err == nil && len(b) == 64 {
			return string(b), nil
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f.data, 0, f.size)); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if key != "" && os.MkdirAll(f.hashCache, 0o755) == nil {
		tmp := key + ".tmp"
		if os.WriteFile(tmp, []byte(sum), 0o644) == nil {
			os.Rename(tmp, key)
		}
	}
	return sum, nil
}

// pointer is the Git LFS pointer file committed in place of the content
// (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
func (f *File) pointer() string {
	return fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", f.sha256, f.size)
}

func gitBlobID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// DefaultGitattributes is the .gitattributes the Hub writes into a new
// model repository (the LFS patterns), with *.gguf as GGUF repositories
// add it.
const DefaultGitattributes = `*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.mlmodel filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.rar filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
saved_model/**/* filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.wasm filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
*.gguf filter=lfs diff=lfs merge=lfs -text
tokenizer.json filter=lfs diff=lfs merge=lfs -text
`

// lfsTracked applies DefaultGitattributes' patterns to a path.
func lfsTracked(p string) bool {
	base := path.Base(p)
	for _, line := range strings.Split(DefaultGitattributes, "\n") {
		pat, _, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if strings.HasPrefix(pat, "saved_model/") {
			if strings.HasPrefix(p, "saved_model/") {
				return true
			}
			continue
		}
		if m, _ := path.Match(pat, base); m {
			return true
		}
	}
	return false
}

// commit is one commit of a repository: its files by path.
type commit struct {
	id    string
	files map[string]*File
	paths []string
}

// newCommit makes a commit of files; its id stands for the repository,
// the parent and the content.
func newCommit(repo, parent string, files []*File) (*commit, error) {
	c := &commit{files: map[string]*File{}}
	h := sha1.New()
	fmt.Fprintf(h, "%s\n%s\n", repo, parent)
	for _, f := range files {
		if _, dup := c.files[f.Path]; dup {
			return nil, fmt.Errorf("hubtest: %s twice", f.Path)
		}
		c.files[f.Path] = f
		c.paths = append(c.paths, f.Path)
	}
	sort.Strings(c.paths)
	for _, p := range c.paths {
		f := c.files[p]
		// Paths, sizes and the head of each file: hashing every byte of a
		// sparse 16 GB shard here would make a server slow to start (the
		// digests come when a route needs them).
		fmt.Fprintf(h, "%s %d %v\n", p, f.size, f.LFS)
		head := make([]byte, min(f.size, 4096))
		f.data.ReadAt(head, 0)
		h.Write(head)
	}
	c.id = hex.EncodeToString(h.Sum(nil))
	return c, nil
}

// weightOffset is where a safetensors or GGUF file's weights begin.
func weightOffset(f *File) int64 {
	switch {
	case strings.HasSuffix(f.Path, ".safetensors"):
		var b [8]byte
		if _, err := f.data.ReadAt(b[:], 0); err != nil {
			return -1
		}
		return 8 + int64(binary.LittleEndian.Uint64(b[:]))
	case strings.HasSuffix(f.Path, ".gguf"):
		g, err := gguf.Parse(io.NewSectionReader(f.data, 0, f.size))
		if err != nil {
			return -1
		}
		return g.DataOffset
	}
	return -1
}

package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/hub/hubtest"
)

const repoID = "gantry-test/blobs"

// blobRepo is a repository of a large LFS file of random bytes (so a
// flipped byte shows), a smaller one, and a plain (git) file.
func blobRepo(t *testing.T) (*hubtest.Server, *hub.Client, *hub.Repo, map[string][]byte) {
	t.Helper()
	s, err := hubtest.New(hubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	rng := rand.New(rand.NewPCG(1, 2))
	content := map[string][]byte{}
	var files []*hubtest.File
	for p, n := range map[string]int{"model-00001-of-00002.safetensors": 12 << 20, "model-00002-of-00002.safetensors": 3 << 20, "config.json": 300} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		content[p] = b
		files = append(files, hubtest.Bytes(p, b))
	}
	if _, err := s.Push(repoID, files...); err != nil {
		t.Fatal(err)
	}
	c := hub.New(s.URL, "", hub.Env{})
	r, err := c.Resolve(context.Background(), hub.Ref{Repo: repoID, Revision: "main"})
	if err != nil {
		t.Fatal(err)
	}
	var keep []hub.File
	for _, f := range r.Files {
		if f.Path != ".gitattributes" {
			keep = append(keep, f)
		}
	}
	r.Files = keep
	return s, c, r, content
}

func job(c *hub.Client, r *hub.Repo, l Layout) Job {
	return Job{Client: c, Repo: r, Files: r.Files, Layout: l, Every: 20 * time.Millisecond}
}

func total(r *hub.Repo) int64 {
	n := int64(0)
	for _, f := range r.Files {
		n += f.Size
	}
	return n
}

// checkFolder: every file there with its content, the record complete
// and verified, no part left.
func checkFolder(t *testing.T, dir string, r *hub.Repo, content map[string][]byte) {
	t.Helper()
	for p, want := range content {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: %d bytes, %v", p, len(got), err)
		}
	}
	src, err := ReadSource(dir)
	if err != nil || !src.Complete || src.Commit != r.Commit || src.Repo != repoID || len(src.Files) != len(content) {
		t.Fatalf("record: %+v %v", src, err)
	}
	for _, f := range src.Files {
		if !f.Verified {
			t.Errorf("%s not verified in the record", f.Path)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".gantry-partial")); !os.IsNotExist(err) {
		t.Errorf("the parts' folder is left: %v", err)
	}
}

// TestDownloadResumesACutConnection: a connection cut mid-file is
// resumed with a range; no byte comes twice (but for the one chunk the
// stand-in was writing); a second run fetches nothing.
func TestDownloadResumesACutConnection(t *testing.T) {
	s, c, r, content := blobRepo(t)
	dir := filepath.Join(t.TempDir(), "m")
	s.CutNext("model-00001-of-00002.safetensors", 5<<20+123)
	var events []Event
	j := job(c, r, &Folder{Path: dir})
	j.Events = func(e Event) { events = append(events, e) }
	res, err := Run(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	checkFolder(t, dir, r, content)
	if got, max := s.Served(), total(r)+256<<10; got > max {
		t.Errorf("served %d bytes for %d", got, total(r))
	}
	retried := false
	for _, e := range events {
		retried = retried || e.Type == EventRetry
	}
	if !retried || events[0].Type != EventPlan || events[len(events)-1].Type != EventDone || res.Fetched != total(r) {
		t.Errorf("events %v, result %+v", kinds(events), res)
	}
	s.ResetCounters()
	res, err = Run(context.Background(), job(c, r, &Folder{Path: dir}))
	if err != nil || s.Served() != 0 || res.Reused != total(r) {
		t.Errorf("second run: %v, served %d, %+v", err, s.Served(), res)
	}
}

func kinds(es []Event) string {
	var k []string
	for _, e := range es {
		if e.Type != EventProgress {
			k = append(k, e.Type)
		}
	}
	return strings.Join(k, " ")
}

// TestDownloadResumesAfterStop: a download stopped mid-file (as a kill
// does) goes on from its parts: the bytes served in both runs are the
// total and at most one chunk more.
func TestDownloadResumesAfterStop(t *testing.T) {
	s, c, r, content := blobRepo(t)
	dir := filepath.Join(t.TempDir(), "m")
	s.Throttle(8 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	j := job(c, r, &Folder{Path: dir})
	j.Events = func(e Event) {
		if e.Type == EventProgress && e.Done > 6<<20 {
			cancel()
		}
	}
	if _, err := Run(ctx, j); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped run: %v", err)
	}
	first := s.Served()
	s.Throttle(0)
	res, err := Run(context.Background(), job(c, r, &Folder{Path: dir}))
	if err != nil {
		t.Fatal(err)
	}
	checkFolder(t, dir, r, content)
	if got := s.Served(); got > total(r)+copyBuf+256<<10 || res.Reused == 0 {
		t.Errorf("served %d (first run %d) for %d bytes; reused %d", got, first, total(r), res.Reused)
	}
}

// TestDownloadAfterReboot: after a reboot only the synced bytes of a
// part count; the rest is fetched again and the file verifies.
func TestDownloadAfterReboot(t *testing.T) {
	_, c, r, content := blobRepo(t)
	dir := filepath.Join(t.TempDir(), "m")
	l := &Folder{Path: dir}
	f, _ := r.File("model-00001-of-00002.safetensors")
	// A part whose first 4 MiB were synced, then garbage the crash left.
	p, err := openPart(f, l.Part(f))
	if err != nil {
		t.Fatal(err)
	}
	p.write(content[f.Path][:4<<20])
	p.sync()
	p.file.Write(make([]byte, 2<<20))
	p.file.Close()
	old := bootID
	bootID = func() string { return "another boot" }
	defer func() { bootID = old }()
	if _, err := Run(context.Background(), job(c, r, l)); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, dir, r, content)
}

// TestCorruptFileRefused: a file whose bytes are not the Hub's digest is
// refused by name and removed; nothing is placed.
func TestCorruptFileRefused(t *testing.T) {
	s, c, r, _ := blobRepo(t)
	dir := filepath.Join(t.TempDir(), "m")
	s.Corrupt("model-00002-of-00002.safetensors", true)
	s.Corrupt("config.json", true)
	_, err := Run(context.Background(), job(c, r, &Folder{Path: dir}))
	for _, want := range []string{"model-00002-of-00002.safetensors has sha256", "config.json has git blob id", "the file was deleted"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	for _, p := range []string{"model-00002-of-00002.safetensors", ".gantry-partial/model-00002-of-00002.safetensors.part", "config.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s is there", p)
		}
	}
	if src, _ := ReadSource(dir); src == nil || src.Complete || src.Commit != r.Commit {
		t.Errorf("record: %+v", src)
	}
}

// TestTwoDownloadsShareOne: two downloads of one model at once fetch it
// once: the second waits for the first's lock and finds the files there.
func TestTwoDownloadsShareOne(t *testing.T) {
	s, c, r, content := blobRepo(t)
	dir := filepath.Join(t.TempDir(), "m")
	s.Throttle(32 << 20)
	var wg sync.WaitGroup
	waited := make(chan bool, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := job(c, r, &Folder{Path: dir})
			w := false
			j.Events = func(e Event) { w = w || e.Type == EventWait }
			if _, err := Run(context.Background(), j); err != nil {
				t.Error(err)
			}
			waited <- w
		}()
	}
	wg.Wait()
	checkFolder(t, dir, r, content)
	if got := s.Served(); got != total(r) {
		t.Errorf("served %d for %d", got, total(r))
	}
	if a, b := <-waited, <-waited; a == b {
		t.Errorf("waited: %v %v (one of them should have)", a, b)
	}
}

// TestHFCacheLayout: get --to hf-cache writes the layout huggingface_hub
// writes, which its scan_cache_dir reads and whose snapshot it returns
// offline.
func TestHFCacheLayout(t *testing.T) {
	_, c, r, content := blobRepo(t)
	cache := t.TempDir()
	l := &HFCache{Cache: cache, Repo: repoID, Commit: r.Commit}
	if _, err := Run(context.Background(), job(c, r, l)); err != nil {
		t.Fatal(err)
	}
	for p, want := range content {
		ln := filepath.Join(l.Dir(), p)
		if fi, err := os.Lstat(ln); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is not a link: %v", p, err)
		}
		got, _ := os.ReadFile(ln)
		sum := sha256.Sum256(got)
		if string(got) != string(want) {
			t.Errorf("%s: wrong content (%s)", p, hex.EncodeToString(sum[:]))
		}
	}
	if ref, _ := os.ReadFile(filepath.Join(l.RepoDir(), "refs", "main")); string(ref) != r.Commit {
		t.Errorf("refs/main: %q", ref)
	}
	script := `
import json, sys
from huggingface_hub import scan_cache_dir, snapshot_download
info = scan_cache_dir(sys.argv[1])
snap = snapshot_download(sys.argv[2], cache_dir=sys.argv[1], local_files_only=True)
print(json.dumps({"warnings": [str(w) for w in info.warnings], "snapshot": snap,
  "repos": [{"id": r.repo_id, "revisions": [v.commit_hash for v in r.revisions],
             "refs": sorted(x for v in r.revisions for x in v.refs), "files": sum(len(v.files) for v in r.revisions),
             "size": r.size_on_disk} for r in info.repos]}))
`
	cmd := exec.Command(hubtest.Python(t), "-c", script, cache, repoID)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "HF_HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("huggingface_hub: %v %s", err, out)
	}
	var got struct {
		Warnings []string
		Snapshot string
		Repos    []struct {
			ID        string
			Revisions []string
			Refs      []string
			Files     int
			Size      int64
		}
	}
	json.Unmarshal(out, &got)
	if len(got.Warnings) > 0 || len(got.Repos) != 1 || got.Repos[0].ID != repoID || got.Repos[0].Revisions[0] != r.Commit ||
		strings.Join(got.Repos[0].Refs, ",") != "main" || got.Repos[0].Files != 3 || got.Repos[0].Size != total(r) || got.Snapshot != l.Dir() {
		t.Errorf("scan_cache_dir: %s", out)
	}
}

// Package hfcache reads the Hugging Face cache as huggingface_hub lays it
// out (file_download.py, utils/_cache_manager.py in huggingface_hub
// 2.4.0): <cache>/models--org--name/ with blobs/, snapshots/<commit>/
// (links into blobs/) and refs/<branch or tag> holding a commit. Weights
// vLLM, SGLang or `hf download` fetched are there; gantry lists them and
// serves them by a path of the form hf:org/name[@rev][/file].
package hfcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gantryhq/gantry/internal/lazyre"
)

// Dir is the cache: $HF_HUB_CACHE (or the older $HUGGINGFACE_HUB_CACHE),
// else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub (constants.py).
func Dir(getenv func(string) string) string {
	if c := getenv("HF_HUB_CACHE"); c != "" {
		return c
	}
	if c := getenv("HUGGINGFACE_HUB_CACHE"); c != "" {
		return c
	}
	return filepath.Join(Home(getenv), "hub")
}

// Home is $HF_HOME, else $XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface.
func Home(getenv func(string) string) string {
	if h := getenv("HF_HOME"); h != "" {
		return h
	}
	xdg := getenv("XDG_CACHE_HOME")
	if xdg == "" {
		home := getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		xdg = filepath.Join(home, ".cache")
	}
	return filepath.Join(xdg, "huggingface")
}

// RepoFolder is a model repository's folder name: models--org--name
// (file_download.py repo_folder_name).
func RepoFolder(repo string) string { return "models--" + strings.ReplaceAll(repo, "/", "--") }

// Prefix marks a config path that names a cached snapshot.
const Prefix = "hf:"

// Ref is a path of the form hf:org/name[@rev][/file].
type Ref struct {
	Repo string
	Rev  string // a commit, or a branch or tag under refs/; "main" when not given
	File string // a file in the snapshot ("" for the folder)
}

func (r Ref) String() string {
	s := Prefix + r.Repo + "@" + r.Rev
	if r.File != "" {
		s += "/" + r.File
	}
	return s
}

var refPattern = lazyre.New(`^([A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._-]+))?(?:/(.+))?$`)

// IsRef says whether a config path names the cache.
func IsRef(p string) bool { return strings.HasPrefix(p, Prefix) }

// ParseRef reads hf:org/name[@rev][/file].
func ParseRef(p string) (Ref, error) {
	m := refPattern.FindStringSubmatch(strings.TrimPrefix(p, Prefix))
	if !IsRef(p) || m == nil || strings.Contains(m[3], "..") || strings.Contains(m[1], "--") {
		return Ref{}, fmt.Errorf("%q is not hf:org/name, hf:org/name@revision or hf:org/name@revision/file", p)
	}
	r := Ref{Repo: m[1], Rev: m[2], File: m[3]}
	if r.Rev == "" {
		r.Rev = "main"
	}
	return r, nil
}

var commitPattern = lazyre.New(`^[0-9a-f]{40}$`)

// Resolve finds ref's snapshot in cache (a revision that is not a commit
// through refs/), with its file when it names one. When it is not there
// the error says what the cache holds of the repository and how to get
// it.
func Resolve(cache string, r Ref) (string, error) {
	dir := filepath.Join(cache, RepoFolder(r.Repo))
	commit := r.Rev
	if !commitPattern.MatchString(commit) {
		b, err := os.ReadFile(filepath.Join(dir, "refs", filepath.FromSlash(r.Rev)))
		if err != nil {
			return "", notCached(cache, r)
		}
		commit = strings.TrimSpace(string(b))
	}
	p := filepath.Join(dir, "snapshots", commit, filepath.FromSlash(r.File))
	if _, err := os.Stat(p); err != nil {
		return "", notCached(cache, r)
	}
	return p, nil
}

func notCached(cache string, r Ref) error {
	have := []string{}
	if snaps, err := Snapshots(cache); err == nil {
		for _, s := range snaps {
			if s.Repo == r.Repo {
				have = append(have, s.Commit[:min(12, len(s.Commit))])
			}
		}
	}
	msg := fmt.Sprintf("%s is not in the Hugging Face cache at %s", r, cache)
	if len(have) > 0 {
		msg += " (it holds " + r.Repo + " at " + strings.Join(have, ", ") + ")"
	}
	return fmt.Errorf("%s: gantry get %s@%s --to hf-cache puts it there: %w", msg, r.Repo, r.Rev, fs.ErrNotExist)
}

// Snapshot is one cached commit of a model repository.
type Snapshot struct {
	Repo   string   `json:"repo"`
	Commit string   `json:"commit"`
	Refs   []string `json:"refs,omitempty"`
	Path   string   `json:"path"`
}

// Snapshots lists the cache's model snapshots, sorted by repository; a
// cache that does not exist holds none.
func Snapshots(cache string) ([]Snapshot, error) {
	ents, err := os.ReadDir(cache)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, e := range ents {
		org, name, ok := strings.Cut(strings.TrimPrefix(e.Name(), "models--"), "--")
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "models--") || !ok {
			continue
		}
		dir := filepath.Join(cache, e.Name())
		refs := map[string][]string{}
		filepath.WalkDir(filepath.Join(dir, "refs"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if b, err := os.ReadFile(p); err == nil {
					rel, _ := filepath.Rel(filepath.Join(dir, "refs"), p)
					c := strings.TrimSpace(string(b))
					refs[c] = append(refs[c], filepath.ToSlash(rel))
				}
			}
			return nil
		})
		snaps, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
		for _, s := range snaps {
			if s.IsDir() {
				sort.Strings(refs[s.Name()])
				out = append(out, Snapshot{Repo: org + "/" + name, Commit: s.Name(), Refs: refs[s.Name()], Path: filepath.Join(dir, "snapshots", s.Name())})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Repo < out[j].Repo })
	return out, nil
}

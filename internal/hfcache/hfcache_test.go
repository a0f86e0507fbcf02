package hfcache

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

// cacheWith lays out a cache as huggingface_hub does: Qwen/Qwen3-8B at
// commit, refs/main pointing there, a config.json linked into blobs/.
func cacheWith(t *testing.T) string {
	t.Helper()
	cache := t.TempDir()
	repo := filepath.Join(cache, "models--Qwen--Qwen3-8B")
	os.MkdirAll(filepath.Join(repo, "blobs"), 0o755)
	os.MkdirAll(filepath.Join(repo, "snapshots", commit, "sub"), 0o755)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.WriteFile(filepath.Join(repo, "blobs", "abc"), []byte("{}"), 0o644)
	os.Symlink("../../blobs/abc", filepath.Join(repo, "snapshots", commit, "config.json"))
	os.WriteFile(filepath.Join(repo, "snapshots", commit, "sub", "x.gguf"), nil, 0o644)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644)
	os.MkdirAll(filepath.Join(cache, "datasets--a--b", "snapshots", commit), 0o755)
	return cache
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"hf:Qwen/Qwen3-8B":                 {"Qwen/Qwen3-8B", "main", ""},
		"hf:Qwen/Qwen3-8B@v1":              {"Qwen/Qwen3-8B", "v1", ""},
		"hf:org/m-GGUF@main/m-Q8_0.gguf":   {"org/m-GGUF", "main", "m-Q8_0.gguf"},
		"hf:org/m@" + commit + "/a/b.gguf": {"org/m", commit, "a/b.gguf"},
	} {
		if got, err := ParseRef(in); err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"hf:qwen", "Qwen/Qwen3-8B", "hf:a/b/../../etc", "hf:a--b/c", "hf:"} {
		if _, err := ParseRef(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestResolveAndList(t *testing.T) {
	cache := cacheWith(t)
	snap := filepath.Join(cache, "models--Qwen--Qwen3-8B", "snapshots", commit)
	for _, r := range []Ref{{"Qwen/Qwen3-8B", "main", ""}, {"Qwen/Qwen3-8B", commit, ""}} {
		if p, err := Resolve(cache, r); err != nil || p != snap {
			t.Errorf("%v: %s %v", r, p, err)
		}
	}
	if p, err := Resolve(cache, Ref{"Qwen/Qwen3-8B", "main", "sub/x.gguf"}); err != nil || p != filepath.Join(snap, "sub", "x.gguf") {
		t.Errorf("file: %s %v", p, err)
	}
	_, err := Resolve(cache, Ref{"Qwen/Qwen3-8B", "v2", ""})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "it holds Qwen/Qwen3-8B at 0123456789ab") ||
		!strings.Contains(err.Error(), "gantry get Qwen/Qwen3-8B@v2 --to hf-cache") {
		t.Errorf("not cached: %v", err)
	}
	// A snapshot folder that is not named by a commit does not trouble
	// the listing.
	os.MkdirAll(filepath.Join(cache, "models--Qwen--Qwen3-8B", "snapshots", "main"), 0o755)
	if _, err := Resolve(cache, Ref{"Qwen/Qwen3-8B", "v3", ""}); !strings.Contains(err.Error(), "0123456789ab, main") {
		t.Errorf("%v", err)
	}
	os.Remove(filepath.Join(cache, "models--Qwen--Qwen3-8B", "snapshots", "main"))
	snaps, err := Snapshots(cache)
	if err != nil || len(snaps) != 1 || snaps[0].Repo != "Qwen/Qwen3-8B" || snaps[0].Commit != commit || strings.Join(snaps[0].Refs, ",") != "main" {
		t.Errorf("snapshots: %+v %v", snaps, err)
	}
	if s, err := Snapshots(filepath.Join(cache, "none")); err != nil || len(s) != 0 {
		t.Errorf("no cache: %v %v", s, err)
	}
}

func TestDir(t *testing.T) {
	env := map[string]string{"HOME": "/home/u"}
	get := func(k string) string { return env[k] }
	if d := Dir(get); d != "/home/u/.cache/huggingface/hub" {
		t.Error(d)
	}
	env["XDG_CACHE_HOME"] = "/x"
	if d := Dir(get); d != "/x/huggingface/hub" {
		t.Error(d)
	}
	env["HF_HOME"] = "/h"
	if d := Dir(get); d != "/h/hub" {
		t.Error(d)
	}
	env["HF_HUB_CACHE"] = "/c"
	if d := Dir(get); d != "/c" {
		t.Error(d)
	}
}

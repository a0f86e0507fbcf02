package api

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/fetch"
)

// This box's downloads, served as a Hugging Face Hub serves them, so that
// a peer's gantry copies a model's files from here over the link (its
// hub client pointed at <this gantry>/api/hub) instead of from the Hub:
// the same routes, the same verification, resumable. Only complete
// downloads (their .gantry-source.json) are served, only their files.

// held is a complete download of this box: its record and folder.
type held struct {
	src *fetch.Source
	dir string
}

// heldRepos finds the complete downloads under <root>/models.
func (s *Server) heldRepos() []held {
	root := filepath.Join(s.sched.Config().Root, "models")
	var out []held
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || strings.Count(strings.TrimPrefix(p, root), string(filepath.Separator)) > 3 {
			return filepath.SkipDir
		}
		if src, err := fetch.ReadSource(p); err == nil && src.Complete {
			out = append(out, held{src, p})
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// find is the download of repo at rev (a commit, or the revision it was
// fetched at).
func (s *Server) find(repo, rev string) *held {
	for _, h := range s.heldRepos() {
		if h.src.Repo == repo && (h.src.Commit == rev || h.src.Revision == rev) {
			return &h
		}
	}
	return nil
}

// hubServe answers GET and HEAD /api/hub/…: /api/models/{org}/{name}/revision/{rev},
// /api/models/{org}/{name}/tree/{rev}, /{org}/{name}/resolve/{rev}/{file}.
func (s *Server) hubServe(w http.ResponseWriter, r *http.Request) {
	var seg []string
	for _, p := range strings.Split(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), "/api/hub"), "/"), "/") {
		u, err := url.PathUnescape(p)
		if err != nil {
			u = p
		}
		seg = append(seg, u)
	}
	switch {
	case len(seg) == 6 && seg[0] == "api" && seg[1] == "models" && seg[4] == "revision":
		s.hubInfo(w, seg[2]+"/"+seg[3], seg[5])
	case len(seg) == 6 && seg[0] == "api" && seg[1] == "models" && seg[4] == "tree":
		s.hubTree(w, seg[2]+"/"+seg[3], seg[5])
	case len(seg) >= 5 && seg[2] == "resolve":
		s.hubFile(w, r, seg[0]+"/"+seg[1], seg[3], strings.Join(seg[4:], "/"))
	default:
		hubError(w, http.StatusNotFound, "", "this gantry serves the Hub's revision, tree and resolve routes for its own downloads only")
	}
}

// hubError answers as the Hub does (X-Error-Code, X-Error-Message), which
// the hub client turns into its words.
func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	apierr.Write(w, status, "invalid_request_error", "hub_not_found", msg)
}

func (s *Server) hubHeld(w http.ResponseWriter, repo, rev string) *held {
	h := s.find(repo, rev)
	if h == nil {
		hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("this gantry holds no complete download of %s at %s", repo, rev))
	}
	return h
}

func (s *Server) hubInfo(w http.ResponseWriter, repo, rev string) {
	if h := s.hubHeld(w, repo, rev); h != nil {
		sib := []map[string]any{}
		for _, f := range h.src.Files {
			sib = append(sib, map[string]any{"rfilename": f.Path})
		}
		apierr.WriteJSON(w, http.StatusOK, map[string]any{"id": repo, "modelId": repo, "sha": h.src.Commit,
			"private": false, "gated": false, "siblings": sib})
	}
}

func (s *Server) hubTree(w http.ResponseWriter, repo, rev string) {
	h := s.hubHeld(w, repo, rev)
	if h == nil {
		return
	}
	out := []map[string]any{}
	for _, f := range h.src.Files {
		e := map[string]any{"type": "file", "path": f.Path, "size": f.Size, "oid": f.BlobID}
		if f.SHA256 != "" {
			e["lfs"] = map[string]any{"oid": f.SHA256, "size": f.Size}
		}
		out = append(out, e)
	}
	apierr.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) hubFile(w http.ResponseWriter, r *http.Request, repo, rev, p string) {
	h := s.hubHeld(w, repo, rev)
	if h == nil {
		return
	}
	for _, f := range h.src.Files {
		if f.Path != p || !filepath.IsLocal(filepath.FromSlash(f.Path)) { // a record's path stays in its folder
			continue
		}
		file, err := os.Open(filepath.Join(h.dir, filepath.FromSlash(f.Path)))
		if err != nil {
			hubError(w, http.StatusNotFound, "EntryNotFound", err.Error())
			return
		}
		defer file.Close()
		etag := f.BlobID
		if f.SHA256 != "" {
			etag = f.SHA256
		}
		w.Header().Set("X-Repo-Commit", h.src.Commit)
		w.Header().Set("ETag", `"`+etag+`"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", h.src.Started, file) // ranges, HEAD
		return
	}
	hubError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s is not a file of %s@%s here", p, repo, rev))
}

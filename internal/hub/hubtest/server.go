package hubtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server.
type Options struct {
	// Addr and CDNAddr are the listen addresses of the Hub and of its
	// CDN (another origin, as on the real Hub); default 127.0.0.1:0.
	Addr, CDNAddr string
	// HashCache keeps the sha256 of large sparse files between runs.
	HashCache string
	// PublicHost is the host clients reach both origins by (when they
	// listen on every address, as for boxes in network namespaces).
	PublicHost string
}

// Server is the stand-in Hub: Close it when done.
type Server struct {
	// URL is the Hub's endpoint (HF_ENDPOINT); CDNURL the origin LFS
	// files are redirected to.
	URL, CDNURL string

	opts     Options
	hub, cdn *http.Server

	mu     sync.Mutex
	repos  map[string]*repo
	blobs  map[string]*File // sha256 → file, for the CDN
	faults faults

	served, weights, requests atomic.Int64
	perFile                   sync.Map // path in repo → *atomic.Int64
}

type repo struct {
	id      string
	gated   string // "", "auto", "manual"
	private bool
	allowed map[string]bool // tokens with access
	refs    map[string]string
	commits map[string]*commit
}

// faults are the misbehaviours asked for.
type faults struct {
	cut      map[string]int64 // path → cut the next GET of it after n bytes
	corrupt  map[string]bool  // path → flip a byte in every answer
	rate     int64            // bytes per second per answer (0: as fast as it goes)
	fail5xx  int              // the next n requests answer 503
	onServed func(path string, n int64)
}

// New starts a stand-in Hub.
func New(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.CDNAddr == "" {
		opts.CDNAddr = "127.0.0.1:0"
	}
	s := &Server{opts: opts, repos: map[string]*repo{}, blobs: map[string]*File{},
		faults: faults{cut: map[string]int64{}, corrupt: map[string]bool{}}}
	hl, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	cl, err := net.Listen("tcp", opts.CDNAddr)
	if err != nil {
		hl.Close()
		return nil, err
	}
	s.URL, s.CDNURL = "http://"+hl.Addr().String(), "http://"+cl.Addr().String()
	if opts.PublicHost != "" {
		s.URL = fmt.Sprintf("http://%s:%d", opts.PublicHost, hl.Addr().(*net.TCPAddr).Port)
		s.CDNURL = fmt.Sprintf("http://%s:%d", opts.PublicHost, cl.Addr().(*net.TCPAddr).Port)
	}
	s.hub = &http.Server{Handler: http.HandlerFunc(s.serveHub), ReadHeaderTimeout: 10 * time.Second}
	s.cdn = &http.Server{Handler: http.HandlerFunc(s.serveCDN), ReadHeaderTimeout: 10 * time.Second}
	go s.hub.Serve(hl)
	go s.cdn.Serve(cl)
	return s, nil
}

// Close stops both listeners.
func (s *Server) Close() {
	s.hub.Close()
	s.cdn.Close()
}

// Push commits files to repository id (creating it) and moves its main
// branch there; it returns the commit's id. Every repository gets the
// Hub's .gitattributes unless files hold one.
func (s *Server) Push(id string, files ...*File) (string, error) {
	if strings.Count(id, "/") != 1 {
		return "", fmt.Errorf("hubtest: repository %q is not org/name", id)
	}
	has := false
	for _, f := range files {
		f.hashCache = s.opts.HashCache
		has = has || f.Path == ".gitattributes"
	}
	if !has {
		files = append(files, Bytes(".gitattributes", []byte(DefaultGitattributes)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[id]
	if r == nil {
		r = &repo{id: id, refs: map[string]string{}, commits: map[string]*commit{}, allowed: map[string]bool{}}
		s.repos[id] = r
	}
	c, err := newCommit(id, r.refs["main"], files)
	if err != nil {
		return "", err
	}
	r.commits[c.id] = c
	r.refs["main"] = c.id
	return c.id, nil
}

// Tag points a branch or tag name of repository id at a commit.
func (s *Server) Tag(id, name, commit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[id].refs[name] = commit
}

// Gate makes repository id gated ("auto" or "manual"), its files readable
// only with one of tokens.
func (s *Server) Gate(id, mode string, tokens ...string) {
	s.restrict(id, func(r *repo) { r.gated = mode }, tokens)
}

// Private makes repository id private, visible only with one of tokens.
func (s *Server) Private(id string, tokens ...string) {
	s.restrict(id, func(r *repo) { r.private = true }, tokens)
}

func (s *Server) restrict(id string, set func(*repo), tokens []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[id]
	set(r)
	for _, t := range tokens {
		r.allowed[t] = true
	}
}

// apiError answers as the Hub does: a status, X-Error-Code and
// X-Error-Message, and a JSON body with the message.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func bearer(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(a, "Bearer "); ok {
		return t
	}
	return ""
}

// segments splits the request's escaped path, unescaping each segment
// (a revision arrives quoted with safe="": refs%2Fpr%2F1 is one segment).
func segments(r *http.Request) []string {
	var out []string
	for _, s := range strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			u = s
		}
		out = append(out, u)
	}
	return out
}

// lookup finds a repository the request may see and the commit rev names;
// it answers the error itself and returns nil when there is none. files
// says the request reads file content (gated repositories refuse it).
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, id, rev string, files bool) (*repo, *commit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.repos[id]
	tok := bearer(r)
	if rp == nil || rp.private && !rp.allowed[tok] {
		// The Hub answers 401 to a request without a token and 404 with
		// one, for a missing repository and a private one alike.
		status := http.StatusUnauthorized
		if tok != "" {
			status = http.StatusNotFound
		}
		apiError(w, status, "RepoNotFound", "Repository not found")
		return nil, nil
	}
	c := rp.commits[rev]
	if c == nil {
		c = rp.commits[rp.refs[rev]]
	}
	if c == nil {
		apiError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return nil, nil
	}
	if files && rp.gated != "" && !rp.allowed[tok] {
		if tok == "" {
			apiError(w, http.StatusUnauthorized, "GatedRepo", fmt.Sprintf("Access to model %s is restricted. You must have access to it and be authenticated to access it. Please log in.", id))
		} else {
			apiError(w, http.StatusForbidden, "GatedRepo", fmt.Sprintf("Access to model %s is restricted and you are not in the authorized list. Visit https://huggingface.co/%s to ask for access.", id, id))
		}
		return nil, nil
	}
	return rp, c
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if s.take5xx() {
		apiError(w, http.StatusServiceUnavailable, "", "Service Unavailable")
		return
	}
	seg := segments(r)
	switch {
	case len(seg) >= 4 && seg[0] == "api" && seg[1] == "models":
		s.serveAPI(w, r, seg[2]+"/"+seg[3], seg[4:])
	case len(seg) >= 5 && seg[2] == "resolve":
		s.serveResolve(w, r, seg[0]+"/"+seg[1], seg[3], strings.Join(seg[4:], "/"))
	default:
		apiError(w, http.StatusNotFound, "", "Sorry, we can't find the page you are looking for.")
	}
}

func (s *Server) take5xx() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.fail5xx > 0 {
		s.faults.fail5xx--
		return true
	}
	return false
}

// serveAPI answers /api/models/{id}[/revision/{rev} | /tree/{rev}[/{path}]].
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, id string, rest []string) {
	if r.Method != http.MethodGet {
		apiError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	}
	switch {
	case len(rest) == 0:
		s.modelInfo(w, r, id, "main")
	case len(rest) == 2 && rest[0] == "revision":
		s.modelInfo(w, r, id, rest[1])
	case len(rest) >= 2 && rest[0] == "tree":
		s.tree(w, r, id, rest[1], strings.Join(rest[2:], "/"))
	default:
		apiError(w, http.StatusNotFound, "", "Not Found")
	}
}

type lfsInfo struct {
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256,omitempty"`
	OID         string `json:"oid,omitempty"`
	PointerSize int    `json:"pointerSize"`
}

type sibling struct {
	RFilename string   `json:"rfilename"`
	Size      *int64   `json:"size,omitempty"`
	BlobID    string   `json:"blobId,omitempty"`
	LFS       *lfsInfo `json:"lfs,omitempty"`
}

func (s *Server) modelInfo(w http.ResponseWriter, r *http.Request, id, rev string) {
	rp, c := s.lookup(w, r, id, rev, false)
	if c == nil {
		return
	}
	blobs := r.URL.Query().Get("blobs") == "true" || r.URL.Query().Get("blobs") == "True"
	sibs := []sibling{}
	for _, p := range c.paths {
		f := c.files[p]
		sb := sibling{RFilename: p}
		if blobs {
			sha, oid, err := f.hashes()
			if err != nil {
				apiError(w, http.StatusInternalServerError, "", err.Error())
				return
			}
			size := f.size
			sb.Size, sb.BlobID = &size, oid
			if f.LFS {
				sb.LFS = &lfsInfo{Size: f.size, SHA256: sha, PointerSize: len(f.pointer())}
			}
		}
		sibs = append(sibs, sb)
	}
	var gated any = false
	if rp.gated != "" {
		gated = rp.gated
	}
	org, _, _ := strings.Cut(id, "/")
	writeJSON(w, map[string]any{
		"_id": c.id[:24], "id": id, "modelId": id, "author": org, "sha": c.id,
		"lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z",
		"private": rp.private, "gated": gated, "disabled": false, "downloads": 0, "likes": 0,
		"tags": []string{}, "siblings": sibs, "spaces": []string{},
	})
}

type treeEntry struct {
	Type string   `json:"type"`
	OID  string   `json:"oid"`
	Size int64    `json:"size"`
	Path string   `json:"path"`
	LFS  *lfsInfo `json:"lfs,omitempty"`
}

// tree answers the tree listing: files and folders under dir, all of
// them with recursive=true (one page: the Hub pages by 1000 with a Link
// header, and no test repository is that large).
func (s *Server) tree(w http.ResponseWriter, r *http.Request, id, rev, dir string) {
	_, c := s.lookup(w, r, id, rev, false)
	if c == nil {
		return
	}
	recursive := r.URL.Query().Get("recursive") == "true" || r.URL.Query().Get("recursive") == "True"
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	out := []treeEntry{}
	dirs := map[string]bool{}
	for _, p := range c.paths {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		rel := strings.TrimPrefix(p, prefix)
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			d := prefix + strings.Join(parts[:i], "/")
			if !dirs[d] && (recursive || i == 1) {
				dirs[d] = true
				out = append(out, treeEntry{Type: "directory", OID: gitBlobID([]byte(d)), Path: d})
			}
		}
		if len(parts) > 1 && !recursive {
			continue
		}
		f := c.files[p]
		sha, oid, err := f.hashes()
		if err != nil {
			apiError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		e := treeEntry{Type: "file", OID: oid, Size: f.size, Path: p}
		if f.LFS {
			e.LFS = &lfsInfo{Size: f.size, OID: sha, PointerSize: len(f.pointer())}
		}
		out = append(out, e)
	}
	if dir != "" && len(out) == 0 {
		apiError(w, http.StatusNotFound, "EntryNotFound", dir+" does not exist on \""+rev+"\"")
		return
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}

// serveResolve answers /{id}/resolve/{rev}/{file}.
func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, id, rev, p string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		apiError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	}
	_, c := s.lookup(w, r, id, rev, true)
	if c == nil {
		return
	}
	w.Header().Set("X-Repo-Commit", c.id)
	f := c.files[p]
	if f == nil {
		apiError(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
		return
	}
	sha, oid, err := f.hashes()
	if err != nil {
		apiError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	if f.LFS {
		s.mu.Lock()
		s.blobs[sha] = f
		s.mu.Unlock()
		h := w.Header()
		h.Set("ETag", `"`+oid+`"`)
		h.Set("X-Linked-Etag", `"`+sha+`"`)
		h.Set("X-Linked-Size", strconv.FormatInt(f.size, 10))
		// A signed CDN address: another origin, so clients drop the token.
		h.Set("Location", fmt.Sprintf("%s/repos/%s/%s?expires=%d", s.CDNURL, sha[:2], sha, time.Now().Add(time.Hour).Unix()))
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+oid+`"`)
	s.serveBytes(w, r, f)
}

// serveCDN answers /repos/{xx}/{sha256} with the LFS file's bytes.
func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	seg := segments(r)
	if len(seg) != 3 || seg[0] != "repos" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	f := s.blobs[seg[2]]
	s.mu.Unlock()
	if f == nil {
		http.Error(w, "<Error><Code>NoSuchKey</Code></Error>", http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "" {
		// Real CDNs refuse what they cannot check; the client must not
		// send the Hub's token to another origin.
		http.Error(w, "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>", http.StatusBadRequest)
		return
	}
	w.Header().Set("ETag", `"`+f.sha256+`"`)
	s.serveBytes(w, r, f)
}

// serveBytes answers a file's bytes, whole or the range asked.
func (s *Server) serveBytes(w http.ResponseWriter, r *http.Request, f *File) {
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	start, end, ok := parseRange(r.Header.Get("Range"), f.size)
	if !ok {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", f.size))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	status := http.StatusOK
	if r.Header.Get("Range") != "" {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, f.size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	s.copyBody(w, f, start, end)
}

// parseRange reads "bytes=a-b", "bytes=a-" or "bytes=-n" (one range);
// an empty header is the whole file.
func parseRange(v string, size int64) (start, end int64, ok bool) {
	if v == "" {
		return 0, size, true
	}
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size, true
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end = size
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e+1, size)
	}
	return start, end, true
}

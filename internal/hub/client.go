package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/lazyre"
)

// Ref names a repository and a revision: "org/name" or "org/name@rev".
type Ref struct {
	Repo     string `json:"repo"`
	Revision string `json:"revision"` // a branch, tag or commit; "main" when not given
}

// String is "org/name@rev".
func (r Ref) String() string { return r.Repo + "@" + r.Revision }

var repoID = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$`)

// ParseRef reads "org/name[@rev]" (also a Hub address such as
// https://huggingface.co/org/name).
func ParseRef(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	if u, err := url.Parse(s); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
		s = strings.Trim(u.Path, "/")
		if a, b, ok := strings.Cut(s, "/tree/"); ok {
			s = a + "@" + b
		}
	}
	repo, rev, _ := strings.Cut(s, "@")
	if rev == "" {
		rev = "main"
	}
	if !repoID.MatchString(repo) || strings.Contains(repo, "..") || strings.Contains(repo, "--") {
		return Ref{}, fmt.Errorf("%q is not a Hub repository: write org/name, or org/name@revision", s)
	}
	return Ref{Repo: repo, Revision: rev}, nil
}

// File is one file of a repository at a commit.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	BlobID string `json:"blob_id"`          // git blob id (of the LFS pointer for LFS files)
	SHA256 string `json:"sha256,omitempty"` // LFS files: the content's sha256
}

// Repo is a repository at one commit.
type Repo struct {
	Ref
	Commit  string `json:"commit"`
	Gated   string `json:"gated,omitempty"` // "", auto, manual
	Private bool   `json:"private,omitempty"`
	Files   []File `json:"files"`
}

// File finds a file by path.
func (r *Repo) File(p string) (File, bool) {
	for _, f := range r.Files {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

// Client talks to one Hub endpoint.
type Client struct {
	// Endpoint is the Hub's address, without a trailing slash.
	Endpoint string
	// Token is sent as a bearer token to the Hub's own origin (never to the
	// CDN it redirects files to).
	Token string
	// Offline refuses every request (HF_HUB_OFFLINE).
	Offline bool
	// HTTP does the requests; it must not follow redirects itself.
	HTTP *http.Client
}

// New is a client of endpoint ("" is the Hub) with token: the config's
// hub.endpoint and hub.token first, else the environment's.
func New(endpoint, token string, env Env) *Client {
	if endpoint == "" {
		endpoint = env.Endpoint
	}
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if token == "" {
		token = env.Token
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 60 * time.Second
	tr.MaxIdleConnsPerHost = 16
	// Checkpoints are served as they are: compression would hide the
	// sizes and cost CPU (file_download.py asks for identity too).
	tr.DisableCompression = true
	return &Client{Endpoint: strings.TrimRight(endpoint, "/"), Token: token, Offline: env.Offline,
		HTTP: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Page is a repository's page on the Hub (where its licence is accepted).
func (c *Client) Page(repo string) string { return c.Endpoint + "/" + repo }

// do sends a request to the Hub and follows its redirects the way
// huggingface_hub does (utils/_http.py _httpx2_follow_hub_redirects_with_backoff):
// on the same origin with the token, to another origin (a CDN's signed
// address) without it. A Hub error comes back as *Error.
func (c *Client) do(ctx context.Context, method, u string, hdr http.Header, ref Ref) (*http.Response, error) {
	if c.Offline {
		return nil, &Error{Kind: Offline, Ref: ref, Endpoint: c.Endpoint}
	}
	origin := originOf(u)
	for hop := 0; hop < 10; hop++ {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", "gantry (huggingface_hub-compatible)")
		if c.Token != "" && originOf(u) == origin {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &Error{Kind: Unreachable, Ref: ref, Endpoint: c.Endpoint, Detail: err.Error()}
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "":
			loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
			drain(resp)
			if err != nil {
				return nil, fmt.Errorf("hub: a redirect to %q: %w", resp.Header.Get("Location"), err)
			}
			u = loc.String()
			continue
		case resp.StatusCode >= 400:
			defer drain(resp)
			return nil, c.errorOf(resp, ref)
		}
		return resp, nil
	}
	return nil, fmt.Errorf("hub: more than 10 redirects from %s", u)
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Scheme + "://" + p.Host
}

// getJSON fetches an API route into v.
func (c *Client) getJSON(ctx context.Context, u string, ref Ref, v any) (http.Header, error) {
	resp, err := c.do(ctx, http.MethodGet, u, nil, ref)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return nil, fmt.Errorf("hub: %s answered what is not the Hub's JSON (%v): is %s a Hub endpoint?", u, err, c.Endpoint)
	}
	return resp.Header, nil
}

// Resolve finds the commit ref names and lists every file there with its
// size and digests: the model info at the revision (hf_api.py
// HfApi.model_info: /api/models/{repo}/revision/{rev}), then the tree at
// that commit (HfApi.list_repo_tree: /api/models/{repo}/tree/{commit}?recursive=true,
// pages followed through the Link header). Everything after uses the
// commit, so a branch that moves meanwhile changes nothing.
func (c *Client) Resolve(ctx context.Context, ref Ref) (*Repo, error) {
	var info struct {
		ID      string `json:"id"`
		SHA     string `json:"sha"`
		Private bool   `json:"private"`
		Gated   any    `json:"gated"`
	}
	u := fmt.Sprintf("%s/api/models/%s/revision/%s", c.Endpoint, ref.Repo, url.PathEscape(ref.Revision))
	if _, err := c.getJSON(ctx, u, ref, &info); err != nil {
		return nil, err
	}
	if len(info.SHA) != 40 {
		return nil, fmt.Errorf("hub: %s names no commit for %s (sha %q)", c.Endpoint, ref, info.SHA)
	}
	r := &Repo{Ref: ref, Commit: info.SHA, Private: info.Private}
	if g, ok := info.Gated.(string); ok {
		r.Gated = g
	}
	next := fmt.Sprintf("%s/api/models/%s/tree/%s?recursive=true", c.Endpoint, ref.Repo, info.SHA)
	for next != "" {
		var page []struct {
			Type string `json:"type"`
			Path string `json:"path"`
			Size int64  `json:"size"`
			OID  string `json:"oid"`
			LFS  *struct {
				OID  string `json:"oid"`
				Size int64  `json:"size"`
			} `json:"lfs"`
		}
		hdr, err := c.getJSON(ctx, next, ref, &page)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Type != "file" {
				continue
			}
			f := File{Path: e.Path, Size: e.Size, BlobID: e.OID}
			if e.LFS != nil {
				f.SHA256, f.Size = e.LFS.OID, e.LFS.Size
			}
			if !safePath(f.Path) {
				return nil, fmt.Errorf("hub: %s lists a file outside the repository: %q", ref, f.Path)
			}
			r.Files = append(r.Files, f)
		}
		next = nextLink(hdr.Get("Link"))
	}
	return r, nil
}

// safePath refuses a path that would leave the model's folder.
func safePath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return false
	}
	for _, s := range strings.Split(p, "/") {
		if s == "" || s == "." || s == ".." {
			return false
		}
	}
	return true
}

// nextLink reads the rel="next" address of a Link header.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		u, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if ok && strings.Contains(params, `rel="next"`) {
			return strings.Trim(strings.TrimSpace(u), "<>")
		}
	}
	return ""
}

// FileURL is a file's address at a commit (file_download.py hf_hub_url).
func (c *Client) FileURL(repo, commit, p string) string {
	return fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, repo, url.PathEscape(commit), (&url.URL{Path: p}).EscapedPath())
}

// Open reads file p of repository r from byte off; n > 0 reads n bytes,
// else to the end. The body is the caller's to close.
func (c *Client) Open(ctx context.Context, r *Repo, p string, off, n int64) (io.ReadCloser, error) {
	hdr := http.Header{}
	if off > 0 || n > 0 {
		rng := fmt.Sprintf("bytes=%d-", off)
		if n > 0 {
			rng += strconv.FormatInt(off+n-1, 10)
		}
		hdr.Set("Range", rng)
	}
	resp, err := c.do(ctx, http.MethodGet, c.FileURL(r.Repo, r.Commit, p), hdr, r.Ref)
	if err != nil {
		var he *Error
		if errors.As(err, &he) {
			he.File = p
		}
		return nil, err
	}
	if (off > 0 || n > 0) && resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return nil, fmt.Errorf("hub: %s answered %s to a range request for %s: it does not serve ranges", c.Endpoint, resp.Status, p)
	}
	return resp.Body, nil
}

// ReadFile reads a whole small file (at most limit bytes).
func (c *Client) ReadFile(ctx context.Context, r *Repo, p string, limit int64) ([]byte, error) {
	body, err := c.Open(ctx, r, p, 0, 0)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return b, err
}

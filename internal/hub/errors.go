package hub

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Kind says what went wrong with the Hub.
type Kind string

// Kinds of Hub errors.
const (
	Gated       Kind = "gated"        // the repository's licence was not accepted (or no token)
	NoAccess    Kind = "forbidden"    // the token may not read this repository
	BadToken    Kind = "bad-token"    // the token was refused
	NotFound    Kind = "not-found"    // no such repository (or a private one)
	NoRevision  Kind = "no-revision"  // no such branch, tag or commit
	NoFile      Kind = "no-file"      // no such file at the commit
	Offline     Kind = "offline"      // HF_HUB_OFFLINE is set
	Unreachable Kind = "unreachable"  // the network failed
	Server      Kind = "server-error" // any other answer
)

// Error is a Hub error in words that say what to do.
type Error struct {
	Kind     Kind
	Ref      Ref
	File     string
	Endpoint string
	Status   int
	Detail   string // the Hub's own message
	token    bool
}

// Error says what happened and what to do about it.
func (e *Error) Error() string {
	page := e.Endpoint + "/" + e.Ref.Repo
	switch e.Kind {
	case Gated:
		if !e.token {
			return fmt.Sprintf("%s is gated: accept its licence at %s (signed in), then give gantry a token of that account: HF_TOKEN=hf_… or hub.token in the config", e.Ref.Repo, page)
		}
		return fmt.Sprintf("%s is gated and your token's account is not on its authorized list: accept the licence at %s with that account (a manual gate waits for the authors' approval), or use a token of an account that has access", e.Ref.Repo, page)
	case NoAccess:
		return fmt.Sprintf("the Hub refused your token for %s (403: %s): give it read access to this repository (fine-grained tokens list the repositories they may read)", e.Ref.Repo, e.Detail)
	case BadToken:
		return fmt.Sprintf("the Hub refused your token (%s): check HF_TOKEN or hub.token (a token is made at %s/settings/tokens)", e.Detail, e.Endpoint)
	case NotFound:
		if !e.token {
			return fmt.Sprintf("%s was not found on %s: check the name; if it is private, set HF_TOKEN or hub.token", e.Ref.Repo, e.Endpoint)
		}
		return fmt.Sprintf("%s was not found on %s with your token: check the name, and that the token's account may read it", e.Ref.Repo, e.Endpoint)
	case NoRevision:
		return fmt.Sprintf("%s has no revision %q (a branch, tag or commit): see %s/tree/main for its branches", e.Ref.Repo, e.Ref.Revision, page)
	case NoFile:
		return fmt.Sprintf("%s has no file %s at %s", e.Ref.Repo, e.File, e.Ref.Revision)
	case Offline:
		return "HF_HUB_OFFLINE is set: gantry does not use the network; unset it to reach " + e.Endpoint + ", or serve a model already on disk or in the Hugging Face cache (gantry models lists them)"
	case Unreachable:
		return fmt.Sprintf("cannot reach the Hub at %s (%s): check the network, or set hub.endpoint (or HF_ENDPOINT) to a mirror", e.Endpoint, e.Detail)
	}
	return fmt.Sprintf("the Hub at %s answered %d for %s: %s", e.Endpoint, e.Status, e.Ref.Repo, e.Detail)
}

// errorOf reads an error answer the way hf_raise_for_status does
// (utils/_http.py): X-Error-Code first (RepoNotFound, RevisionNotFound,
// EntryNotFound, GatedRepo), then the status.
func (c *Client) errorOf(resp *http.Response, ref Ref) error {
	e := &Error{Ref: ref, Endpoint: c.Endpoint, Status: resp.StatusCode, token: c.Token != "",
		Detail: resp.Header.Get("X-Error-Message")}
	if e.Detail == "" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		e.Detail = strings.TrimSpace(string(b))
	}
	switch code := resp.Header.Get("X-Error-Code"); {
	case code == "GatedRepo":
		e.Kind = Gated
	case code == "RevisionNotFound":
		e.Kind = NoRevision
	case code == "EntryNotFound":
		e.Kind = NoFile
	case code == "RepoNotFound":
		e.Kind = NotFound
	case resp.StatusCode == http.StatusUnauthorized && e.Detail == "Invalid credentials in Authorization header":
		e.Kind = BadToken
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusNotFound:
		e.Kind = NotFound
	case resp.StatusCode == http.StatusForbidden:
		e.Kind = NoAccess
	default:
		e.Kind = Server
	}
	return e
}

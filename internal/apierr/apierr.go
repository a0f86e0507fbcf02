// Package apierr is how gantry answers errors over HTTP: the OpenAI shape
// {"error":{"message","type","code"}} written by one function, and one
// mapping from an error's Kind to its status, type and code, used by the
// gateway and the admin API alike. Packages that produce errors (the
// scheduler) mark them with a Kind; nothing here knows those packages.
package apierr

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Kind classifies an error for its HTTP answer.
type Kind int

// The kinds. Internal is the zero value: an error nobody classified.
const (
	Internal           Kind = iota
	UnknownModel            // 404 model_not_found
	UnknownSlot             // 404 slot_not_found
	UnknownProfile          // 404 profile_not_found
	NotSlotMember           // 400 not_slot_member
	QueueFull               // 429 queue_full, Retry-After
	InsufficientMemory      // 503 insufficient_memory
	SlotSwitching           // 503 slot_switching, Retry-After
	StartFailed             // 503 model_unavailable
	Closed                  // 503 shutting_down
	PeerDown                // 503 peer_down, Retry-After: the peer that serves the model is down
	PeerUnreachable         // 502 peer_unreachable: a relay to a peer failed
	BadRequest              // 400 bad_request: the request names nothing usable
	HubNotFound             // 404 hub_not_found: no such repository, revision or file on the Hub
	HubRefused              // 403 hub_refused: a gated repository, or a token the Hub refused
	HubUnreachable          // 503 hub_unreachable: no network to the Hub, or HF_HUB_OFFLINE
	HubError                // 502 hub_error: the Hub answered an error
)

// Error is a classified error: a sentinel the producer wraps with detail
// (fmt.Errorf("%w: …", ErrX)); errors.Is compares sentinels, KindOf finds
// the kind through any wrapping.
type Error struct {
	Kind Kind
	Msg  string
}

// New returns a sentinel of kind k.
func New(k Kind, msg string) *Error { return &Error{Kind: k, Msg: msg} }

func (e *Error) Error() string { return e.Msg }

// KindOf is the kind of the first classified error in err's chain,
// Internal when none is.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Answer is how one error is answered over HTTP.
type Answer struct {
	Status int
	Type   string // OpenAI's error type
	Code   string // a short machine word clients may switch on
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter string
}

// Map is the one mapping from an error to its HTTP answer.
func Map(err error) Answer {
	switch KindOf(err) {
	case UnknownModel:
		return Answer{http.StatusNotFound, "invalid_request_error", "model_not_found", ""}
	case UnknownSlot:
		return Answer{http.StatusNotFound, "invalid_request_error", "slot_not_found", ""}
	case UnknownProfile:
		return Answer{http.StatusNotFound, "invalid_request_error", "profile_not_found", ""}
	case NotSlotMember:
		return Answer{http.StatusBadRequest, "invalid_request_error", "not_slot_member", ""}
	case QueueFull:
		return Answer{http.StatusTooManyRequests, "rate_limit_error", "queue_full", "1"}
	case InsufficientMemory:
		return Answer{http.StatusServiceUnavailable, "server_error", "insufficient_memory", ""}
	case SlotSwitching:
		return Answer{http.StatusServiceUnavailable, "server_error", "slot_switching", "5"}
	case StartFailed:
		return Answer{http.StatusServiceUnavailable, "server_error", "model_unavailable", ""}
	case Closed:
		return Answer{http.StatusServiceUnavailable, "server_error", "shutting_down", ""}
	case PeerDown:
		return Answer{http.StatusServiceUnavailable, "server_error", "peer_down", "5"}
	case PeerUnreachable:
		return Answer{http.StatusBadGateway, "server_error", "peer_unreachable", ""}
	case BadRequest:
		return Answer{http.StatusBadRequest, "invalid_request_error", "bad_request", ""}
	case HubNotFound:
		return Answer{http.StatusNotFound, "invalid_request_error", "hub_not_found", ""}
	case HubRefused:
		return Answer{http.StatusForbidden, "permission_error", "hub_refused", ""}
	case HubUnreachable:
		return Answer{http.StatusServiceUnavailable, "server_error", "hub_unreachable", ""}
	case HubError:
		return Answer{http.StatusBadGateway, "server_error", "hub_error", ""}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Answer{http.StatusGatewayTimeout, "timeout_error", "timeout", ""}
	}
	return Answer{http.StatusServiceUnavailable, "server_error", "model_unavailable", ""}
}

// Body is the OpenAI-shaped error body.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is the inside of Body.
type Detail struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    any    `json:"code"`
}

// Write writes an OpenAI-shaped error. typ is the OpenAI error type
// (invalid_request_error, …); code a short machine word.
func Write(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Body{Detail{Message: msg, Type: typ, Code: code}}) //nolint:errcheck // client gone
}

// WriteErr answers err as Map says, with its message.
func WriteErr(w http.ResponseWriter, err error) {
	a := Map(err)
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	Write(w, a.Status, a.Type, a.Code, err.Error())
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // client gone
}

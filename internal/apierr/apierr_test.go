package apierr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/sched"
)

// TestOneMapping: every scheduler error, however wrapped, is answered the
// same wherever it is answered (gateway or admin API both call WriteErr).
func TestOneMapping(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		retry  string
	}{
		{sched.ErrUnknownModel, 404, "model_not_found", ""},
		{sched.ErrUnknownSlot, 404, "slot_not_found", ""},
		{sched.ErrUnknownProfile, 404, "profile_not_found", ""},
		{sched.ErrNotSlotMember, 400, "not_slot_member", ""},
		{sched.ErrQueueFull, 429, "queue_full", "1"},
		{sched.ErrInsufficientMemory, 503, "insufficient_memory", ""},
		{sched.ErrSlotSwitching, 503, "slot_switching", "5"},
		{sched.ErrStartFailed, 503, "model_unavailable", ""},
		{sched.ErrClosed, 503, "shutting_down", ""},
		{apierr.New(apierr.PeerDown, "peer down"), 503, "peer_down", "5"},
		{apierr.New(apierr.PeerUnreachable, "peer unreachable"), 502, "peer_unreachable", ""},
		{apierr.New(apierr.BadRequest, "bad"), 400, "bad_request", ""},
		{apierr.New(apierr.HubNotFound, "no repo"), 404, "hub_not_found", ""},
		{apierr.New(apierr.HubRefused, "gated"), 403, "hub_refused", ""},
		{apierr.New(apierr.HubUnreachable, "offline"), 503, "hub_unreachable", ""},
		{apierr.New(apierr.HubError, "500"), 502, "hub_error", ""},
		{context.DeadlineExceeded, 504, "timeout", ""},
		{errors.New("anything else"), 503, "model_unavailable", ""},
	}
	for _, c := range cases {
		wrapped := fmt.Errorf("outer: %w", fmt.Errorf("%w: detail", c.err))
		rec := httptest.NewRecorder()
		apierr.WriteErr(rec, wrapped)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), `"code":"`+c.code+`"`) || rec.Header().Get("Retry-After") != c.retry {
			t.Errorf("%v: %d %s Retry-After %q", c.err, rec.Code, rec.Body.String(), rec.Header().Get("Retry-After"))
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: content type %q", c.err, rec.Header().Get("Content-Type"))
		}
	}
	if http.StatusText(apierr.Map(sched.ErrQueueFull).Status) != "Too Many Requests" {
		t.Error("queue full is not 429")
	}
}

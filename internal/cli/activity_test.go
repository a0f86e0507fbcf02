package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gantryhq/gantry/internal/activity"
)

// TestActivityByAsksForAWeek: `gantry activity --by key` without --since
// totals what GET /api/usage totals without since= (7 days), not the
// record list's 24 hours; a --since given is sent as given.
func TestActivityByAsksForAWeek(t *testing.T) {
	t.Setenv("GANTRY_TOKEN", "")
	var since string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since = r.URL.Query().Get("since")
		if r.URL.Path == "/api/usage" {
			json.NewEncoder(w).Encode(activity.Usage{By: r.URL.Query().Get("by")})
			return
		}
		json.NewEncoder(w).Encode(activity.Result{})
	}))
	defer srv.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"activity", "--by", "key"}, "7d"},
		{[]string{"activity", "--by", "day", "--since", "30d"}, "30d"},
		{[]string{"activity"}, "24h"},
	} {
		since = ""
		var out bytes.Buffer
		if err := Run(context.Background(), append(tc.args, "--server", srv.URL), &out, &out); err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, out.String())
		}
		if since != tc.want {
			t.Errorf("%v asked since=%q, want %q", tc.args, since, tc.want)
		}
	}
}

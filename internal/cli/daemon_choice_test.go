package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/status"
)

// TestClientVerbWithAnUnreadableConfig: a client verb whose config cannot
// be read — a typo, an unset ${env.X} — fails with exit 2 and the config's
// problems instead of talking to whatever gantry answers at the default
// address; --server (or GANTRY_SERVER) still names a daemon by hand.
func TestClientVerbWithAnUnreadableConfig(t *testing.T) {
	t.Setenv("GANTRY_SERVER", "")
	t.Setenv("GANTRY_TOKEN", "")
	dir := t.TempDir()
	unset := filepath.Join(dir, "unset.yaml")
	os.WriteFile(unset, []byte("listen: 127.0.0.1:4999\nauth: {api_keys: [\"${env.GANTRY_TEST_NEVER_SET}\"]}\nmodels:\n  a: {engine: sim, memory: 1GiB}\n"), 0o644)
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("listen: 127.0.0.1:4999\nmodels:\n  a: {engine: sim, memroy: 1GiB}\n"), 0o644)
	for _, tc := range []struct{ file, problem string }{
		{unset, "environment variable GANTRY_TEST_NEVER_SET is not set"},
		{typo, "models.a.memroy: unknown key"},
	} {
		for _, verb := range [][]string{{"ps"}, {"stop", "a"}, {"start", "a"}, {"chat", "a", "hi"}} {
			var out bytes.Buffer
			err := Run(context.Background(), append(verb, "--config", tc.file), &out, &out)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if ExitCode(err) != 2 || !strings.Contains(msg, tc.problem) || !strings.Contains(msg, "--server") {
				t.Errorf("%v with %s: exit %d, %q", verb, filepath.Base(tc.file), ExitCode(err), msg)
			}
		}
	}

	// Named by hand, the daemon is reached whatever the config says.
	var asked string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.URL.Path
		json.NewEncoder(w).Encode(status.Status{})
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"ps", "--config", unset, "--server", srv.URL}, &out, &out); err != nil || asked != "/api/status" {
		t.Errorf("--server with a broken config: %v (asked %q)", err, asked)
	}
	t.Setenv("GANTRY_SERVER", srv.URL)
	asked = ""
	if err := Run(context.Background(), []string{"ps", "--config", typo}, &out, &out); err != nil || asked != "/api/status" {
		t.Errorf("GANTRY_SERVER with a broken config: %v (asked %q)", err, asked)
	}
}

// TestClientErrorsNameTheAddressAndItsSource: every client error says which
// address was tried and where it came from.
func TestClientErrorsNameTheAddressAndItsSource(t *testing.T) {
	t.Setenv("GANTRY_SERVER", "")
	t.Setenv("GANTRY_TOKEN", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gantry.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:1\nmodels:\n  a: {engine: sim, memory: 1GiB}\n"), 0o644)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		w.Write([]byte(`{"error":{"message":"unknown model zz","type":"invalid_request_error","code":"model_not_found"}}`))
	}))
	defer refuse.Close()
	cases := []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"ps", "--server", "http://127.0.0.1:1"}, "", "cannot reach gantry at http://127.0.0.1:1 (from --server)"},
		{[]string{"ps"}, "http://127.0.0.1:1", "cannot reach gantry at http://127.0.0.1:1 (from GANTRY_SERVER)"},
		{[]string{"ps", "--config", cfg}, "", "cannot reach gantry at http://127.0.0.1:1 (from listen: in " + cfg + ")"},
		{[]string{"ps", "--config", filepath.Join(dir, "absent.yaml")}, "", "absent.yaml"},
		{[]string{"stop", "zz", "--server", refuse.URL}, "", "unknown model zz [gantry at " + refuse.URL + " (from --server)]"},
	}
	for _, tc := range cases {
		t.Setenv("GANTRY_SERVER", tc.env)
		var out bytes.Buffer
		err := Run(context.Background(), tc.args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// No config at the default place: the demo's address, said so.
	t.Setenv("HOME", dir)
	t.Setenv("GANTRY_CONFIG", "")
	t.Setenv("GANTRY_SERVER", "")
	var cf clientFlags
	cl, err := cf.client()
	if err != nil || cl.Base() != "http://127.0.0.1:4000" || cl.Source() != "the demo's address: there is no config at "+filepath.Join(dir, "ai", "configs", "gantry", "gantry.yaml") {
		t.Errorf("no config: %v %s from %q", err, cl.Base(), cl.Source())
	}
}

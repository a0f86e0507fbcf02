package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestProfilerPaths: the profiles are where net/http/pprof serves them and
// as go tool pprof reads them — a CPU profile (gzipped protobuf), heap and
// goroutine as text with ?debug=1, symbols for addresses — and a delta or
// an unknown profile is refused with what to do.
func TestProfilerPaths(t *testing.T) {
	srv := httptest.NewServer(profiler())
	defer srv.Close()
	get := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gunzip
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	here := reflect.ValueOf(TestProfilerPaths).Pointer() // an address to look up
	for _, tc := range []struct {
		method, path, body string
		code               int
		has                string
	}{
		{"GET", "/debug/pprof/", "", 200, "heap ("},
		{"GET", "/debug/pprof/profile?seconds=0.2", "", 200, "\x1f\x8b"},
		{"GET", "/debug/pprof/heap?debug=1&gc=1", "", 200, "# HeapAlloc = "},
		{"GET", "/debug/pprof/goroutine?debug=1", "", 200, "goroutine profile: total"},
		{"GET", "/debug/pprof/allocs", "", 200, "\x1f\x8b"},
		{"GET", "/debug/pprof/trace?seconds=0.1", "", 200, "go 1."},
		{"GET", "/debug/pprof/cmdline", "", 200, ""},
		{"GET", "/debug/pprof/symbol", "", 200, "num_symbols: 1"},
		{"POST", "/debug/pprof/symbol", fmt.Sprintf("%#x", here), 200, "TestProfilerPaths"},
		{"GET", "/debug/pprof/heap?seconds=5", "", 400, "-diff_base"},
		{"GET", "/debug/pprof/nothing", "", 404, "no such profile"},
		{"GET", "/debug/pprof/profile?seconds=x", "", 400, "seconds"},
	} {
		code, body := get(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.has) {
			t.Errorf("%s %s: %d %.80q, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.has)
		}
	}
}

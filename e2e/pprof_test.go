package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// TestPprofIsLoopbackOnly: --pprof takes no address other machines can
// reach, and the profiler it opens answers only loopback Host names and
// no cross-site page — as every door of gantry does.
func TestPprofIsLoopbackOnly(t *testing.T) {
	home := t.TempDir()
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "192.0.2.1:6060"} {
		out, code := run(t, home, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t)), "--pprof", addr)
		if code != 2 || !strings.Contains(out, "loopback only") {
			t.Errorf("--pprof %s: exit %d\n%s", addr, code, out)
		}
	}
	pp := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
	startDaemon(t, "", "--pprof", pp)
	testbin.WaitHTTP(t, "http://"+pp+"/debug/pprof/", 20*time.Second)
	get := func(host string, header map[string]string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+pp+"/debug/pprof/goroutine?debug=1", nil)
		req.Host = host
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(pp, nil); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("the profiler on loopback: %d %.200s", code, body)
	}
	if code, body := get("evil.example:"+strings.Split(pp, ":")[1], nil); code != 403 || !strings.Contains(body, "host_not_allowed") {
		t.Errorf("a rebound Host: %d %.200s", code, body)
	}
	if code, body := get(pp, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://attacker.test"}); code != 403 {
		t.Errorf("a cross-site page: %d %.200s", code, body)
	}
}

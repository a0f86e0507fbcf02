package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gantryhq/gantry/internal/testbin"
)

// browser starts headless Chromium; resolve maps host names to 127.0.0.1
// as a DNS rebinding would ("evil.example"), or as a second site on this
// machine ("attacker.test").
func browser(t *testing.T, resolve ...string) context.Context {
	t.Helper()
	var rules []string
	for _, h := range resolve {
		rules = append(rules, "MAP "+h+" 127.0.0.1")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
	)
	if len(rules) > 0 {
		opts = append(opts, chromedp.Flag("host-resolver-rules", strings.Join(rules, ", ")))
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const securityConfig = `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
cors: {allowed_origins: [ALLOWED]}
models:
  m: {engine: sim, memory: 1GiB, args: [--model, e2e-security-m]}
  n: {engine: sim, memory: 1GiB}
slots:
  s: {port: PORTSLOT}
profiles:
  p: {always_on: [n]}
`

// TestBrowserAttacksAreRefused: a keyless gateway on loopback, the README's
// set-up for one user, attacked from web pages in a real browser.
func TestBrowserAttacksAreRefused(t *testing.T) {
	// The attacker's own site, on this machine under a name of its own.
	var page string
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}))
	defer attacker.Close()
	_, aport, _ := net.SplitHostPort(attacker.Listener.Addr().String())
	allowedOrigin := "http://friend.test:" + aport
	d := startDaemon(t, strings.ReplaceAll(securityConfig, "ALLOWED", allowedOrigin))
	_, gport, _ := net.SplitHostPort(strings.TrimPrefix(d.url, "http://"))
	ctx := browser(t, "evil.example", "attacker.test", "friend.test")
	eval := func(js string) string {
		t.Helper()
		return step(t, d, ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	}

	// DNS rebinding: evil.example now resolves to 127.0.0.1, so a page of
	// evil.example:PORT reads gantry same-origin. Host is not loopback: 403.
	step(t, d, ctx, chromedp.Navigate("http://evil.example:"+gport+"/"))
	for _, path := range []string{"/api/status", "/api/logs/m?tail=5", "/v1/models"} {
		got := eval(`fetch("` + path + `").then(async r => r.status + " " + await r.text())`)
		if !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "host_not_allowed") {
			t.Errorf("rebound page read %s: %.200s", path, got)
		}
	}
	got := eval(`fetch("/v1/chat/completions", {method: "POST", body: JSON.stringify({model: "m", messages: []})}).then(r => String(r.status))`)
	if got != "403" {
		t.Errorf("rebound page chatted: %s", got)
	}

	// CSRF: a page of attacker.test posts to gantry's loopback address the
	// way a page can without a preflight (no-cors, text/plain, a form).
	base := "http://127.0.0.1:" + gport
	page = `<html><body>
<form id=f method=POST action="` + base + `/api/profile" enctype="text/plain"><input name='{"profile":"p","x":"' value='"}'></form>
<script>
async function attack() {
  const opts = {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"};
  await fetch("` + base + `/api/models/m/start", opts);
  await fetch("` + base + `/api/slots/s/switch", {...opts, body: '{"model":"m"}'});
  await fetch("` + base + `/api/check?all=1", opts);
  await fetch("` + base + `/v1/chat/completions", {...opts, body: '{"model":"m","messages":[]}'});
  let read = "refused";
  try {
    const r = await fetch("` + base + `/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"}, body: '{"model":"m","messages":[]}'});
    read = "read " + r.status + " " + await r.text();
  } catch (e) { read = "refused: " + e; }
  return read;
}
</script></body></html>`
	step(t, d, ctx, chromedp.Navigate("http://attacker.test:"+aport+"/"))
	if got := eval(`attack()`); !strings.HasPrefix(got, "refused") {
		t.Errorf("a cross-origin page read a completion: %.200s", got)
	}
	step(t, d, ctx, chromedp.Evaluate[bool](`document.getElementById("f").submit(); true`))
	// The form navigates the page to gantry's answer: once it shows, gantry
	// has had the POST, and refused it in its own words.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " " + (document.body ? document.body.innerText : "")`))
		if err == nil && strings.HasPrefix(shown, base+"/api/profile ") && strings.Contains(shown, "cross_site_request") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the form's POST did not come back refused as cross-site: the page shows %q (%v)", shown, err)
		}
	}
	st := d.status()
	if m := st.Model("m"); m.Starts != 0 || st.Profile != "" {
		t.Errorf("the page drove gantry: m started %d times, profile %q", m.Starts, st.Profile)
	}
	if n := len(simPIDs("e2e-security-m")); n != 0 {
		t.Errorf("%d engines of m run", n)
	}

	// The control: an origin listed in cors.allowed_origins reads the same
	// completion, so the refusals above were gantry's, not the browser's.
	page = `<html><body><script>
async function friend() {
  const r = await fetch("` + base + `/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"}, body: '{"model":"m","messages":[{"role":"user","content":"x"}]}'});
  return r.status + " " + r.headers.get("X-Gantry-Served-By") + " " + (await r.json()).choices[0].message.content;
}
</script></body></html>`
	step(t, d, ctx, chromedp.Navigate(allowedOrigin+"/"))
	if got := eval(`friend()`); !strings.HasPrefix(got, "200 m Hallo") {
		t.Errorf("the allowed origin: %s", got)
	}
}

// TestHostileInputIsBounded: requests that promise more than they send,
// bodies two parsers read differently, and an engine printing megabyte
// lines — none of them moves gantry's memory or changes what is served.
func TestHostileInputIsBounded(t *testing.T) {
	home := t.TempDir()
	noisy := filepath.Join(home, "noisy.sh")
	os.WriteFile(noisy, []byte(`#!/bin/sh
i=0
while [ $i -lt 40 ]; do head -c 1048576 /dev/zero | tr '\0' x; printf '\r\n'; i=$((i+1)); done
exec "$GANTRY" sim --port "$PORT" --model noisy
`), 0o755)
	port := testbin.FreePort(t)
	pprof := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
	d := startDaemon(t, fmt.Sprintf(`
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
max_body_total: 64MiB
models:
  m: {engine: sim, memory: 1GiB, mode: always-on}
  noisy:
    engine: command
    mode: always-on
    memory: 1GiB
    port: %d
    command: [%s]
    env: {GANTRY: %s, PORT: "%d"}
`, port, noisy, testbin.Gantry(t), port), "--pprof", pprof)
	d.waitState("m", "ready", 20*time.Second)
	d.waitState("noisy", "ready", 60*time.Second)
	gantryPID := d.cmd.Process.Pid
	before := rssOf(t, gantryPID)

	// 40 connections claim 32 MiB bodies and send 11 bytes each.
	var conns []net.Conn
	for i := 0; i < 40; i++ {
		c, err := net.Dial("tcp", strings.TrimPrefix(d.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"model\":\"m", 32<<20-1)
		conns = append(conns, c)
	}
	// gantry has read the 40 requests' headers and waits for their bodies.
	waitBodyReaders(t, pprof, 40, 30*time.Second)
	// The log tail of a megabyte-line engine, asked for whole.
	resp, err := http.Get(d.url + "/api/logs/noisy?tail=500")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n > 8<<20 {
		t.Errorf("the log tail is %d bytes", n)
	}
	after := rssOf(t, gantryPID)
	if after-before > 100<<20 {
		t.Errorf("gantry's RSS grew from %d MiB to %d MiB", before>>20, after>>20)
	}
	t.Logf("gantry RSS %d MiB → %d MiB with 40 promised 32 MiB bodies and 40 MiB of log lines; log tail %d bytes", before>>20, after>>20, n)

	// Ambiguous bodies are refused before any engine sees them, on every
	// route (the Anthropic and Responses ones go to engines that serve
	// them natively as they came).
	for _, route := range []string{"/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/responses"} {
		for _, model := range []string{`"model":"m","Model":"n"`, `"\u004dodel":"n","model":"m"`, `"model":"m","model":"n"`} {
			body := `{` + model + `,"max_tokens":4,"messages":[{"role":"user","content":"hi"}],"input":"hi"}`
			resp, err := http.Post(d.url+route, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || !strings.Contains(string(b), "ambiguous") {
				t.Errorf("%s %s: %d %s", route, body, resp.StatusCode, b)
			}
		}
	}
	// Admin JSON is read strictly.
	for _, body := range []string{`{"profile":""}{"profile":"x"}`, `{"Profile":""}`} {
		req, _ := http.NewRequest("POST", d.url+"/api/profile", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("admin body %s: %d", body, resp.StatusCode)
		}
	}
	// A 404 does not echo a huge name back.
	huge := strings.Repeat("a", 900<<10)
	resp, err = http.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"`+huge+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || len(b) > 4096 {
		t.Errorf("unknown huge model: %d, %d bytes", resp.StatusCode, len(b))
	}
	// The dashboard may not be framed by another site.
	resp, err = http.Get(d.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, c := range conns {
		c.Close()
	}
}

// waitBodyReaders waits until at least n of gantry's goroutines serve a
// request and wait for its body (net/http's server reading a request
// body, seen in its profiler at pprof); it fails the test when they do not.
func waitBodyReaders(t *testing.T, pprof string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := bodyReaders(pprof)
		if err == nil && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of gantry's goroutines wait for a request body within %s, want %d (%v)", got, within, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bodyReaders(pprof string) (int, error) {
	resp, err := http.Get("http://" + pprof + "/debug/pprof/goroutine?debug=2")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return 0, fmt.Errorf("the profiler: %d %v", resp.StatusCode, err)
	}
	n := 0
	for _, g := range strings.Split(string(b), "\n\n") {
		if strings.Contains(g, "net/http.(*conn).serve") && strings.Contains(g, "net/http.(*body).Read") {
			n++
		}
	}
	return n, nil
}

// rssOf is a process's resident set size; a read or parse error fails the
// test (an RSS of 0 would pass every bound).
func rssOf(t *testing.T, pid int) int64 { return procBytes(t, pid, "VmRSS") }

// procBytes is a size field of /proc/PID/status (VmRSS, VmHWM: the peak);
// a read or parse error fails the test.
func procBytes(t *testing.T, pid int, field string) int64 {
	t.Helper()
	n, err := readProcBytes(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readRSS is pid's resident set size, or why it cannot be read.
func readRSS(pid int) (int64, error) { return readProcBytes(pid, "VmRSS") }

func readProcBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("%s of pid %d: %w", field, pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || len(f) != 2 || f[1] != "kB" || kb <= 0 {
				return 0, fmt.Errorf("%s of pid %d: %q", field, pid, l)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s of pid %d: no such line (a zombie?)", field, pid)
}

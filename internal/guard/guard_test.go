package guard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPolicy(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	admin := func(p string) bool { return strings.HasPrefix(p, "/api/") }
	loop := New("127.0.0.1:4000", []string{"spark.local"}, []string{"http://localhost:8080"}).Wrap(ok, admin)
	lan := New("0.0.0.0:4000", nil, nil).Wrap(ok, admin)
	cases := []struct {
		name    string
		h       http.Handler
		method  string
		path    string
		host    string
		headers map[string]string
		status  int
		code    string
	}{
		{"loopback host", loop, "GET", "/api/status", "127.0.0.1:4000", nil, 200, ""},
		{"localhost", loop, "GET", "/api/status", "localhost:4000", nil, 200, ""},
		{"ipv6 loopback", loop, "GET", "/v1/models", "[::1]:4000", nil, 200, ""},
		{"an allowed host", loop, "GET", "/v1/models", "Spark.Local:4000", nil, 200, ""},
		{"a rebound name", loop, "GET", "/api/status", "evil.example:4000", nil, 403, "host_not_allowed"},
		{"0.0.0.0 is not loopback", loop, "GET", "/api/status", "0.0.0.0:4000", nil, 403, "host_not_allowed"},
		{"any host on a keyed LAN listener", lan, "GET", "/api/status", "spark:4000", nil, 200, ""},
		{"cross-site no-cors post to the admin API", loop, "POST", "/api/models/a/start", "127.0.0.1:4000",
			map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, "cross_site_request"},
		{"cross-site chat", loop, "POST", "/v1/chat/completions", "127.0.0.1:4000",
			map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403, "cross_site_request"},
		{"cross-site on LAN too", lan, "POST", "/api/check", "spark:4000",
			map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, 403, "cross_site_request"},
		{"admin post without JSON", loop, "POST", "/api/profile", "127.0.0.1:4000", nil, 415, "json_required"},
		{"admin post with JSON", loop, "POST", "/api/profile", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 200, ""},
		{"same-origin dashboard", loop, "POST", "/api/models/a/stop", "127.0.0.1:4000",
			map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:4000", "Content-Type": "application/json"}, 200, ""},
		{"an allowed origin", loop, "POST", "/v1/chat/completions", "127.0.0.1:4000",
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost:8080"}, 200, ""},
		{"a null origin", loop, "POST", "/v1/chat/completions", "127.0.0.1:4000", map[string]string{"Origin": "null"}, 403, "cross_site_request"},
		{"gateway post from a script", loop, "POST", "/v1/chat/completions", "127.0.0.1:4000", nil, 200, ""},
		{"preflight of a stranger", loop, "OPTIONS", "/v1/chat/completions", "127.0.0.1:4000",
			map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}, 403, "cross_site_request"},
		{"preflight of an allowed origin", loop, "OPTIONS", "/v1/chat/completions", "127.0.0.1:4000",
			map[string]string{"Origin": "http://localhost:8080", "Access-Control-Request-Method": "POST"}, 204, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "http://x"+c.path, strings.NewReader("{}"))
			r.Host = c.host
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			c.h.ServeHTTP(w, r)
			if w.Code != c.status || (c.code != "" && !strings.Contains(w.Body.String(), `"code":"`+c.code+`"`)) {
				t.Errorf("%d %s", w.Code, w.Body.String())
			}
			acao := w.Header().Get("Access-Control-Allow-Origin")
			if wantCORS := c.headers["Origin"] == "http://localhost:8080"; (acao != "") != wantCORS {
				t.Errorf("Access-Control-Allow-Origin %q", acao)
			}
		})
	}
}

func TestCORSHeader(t *testing.T) {
	for h, want := range map[string]bool{"Access-Control-Allow-Origin": true, "access-control-allow-credentials": true, "Content-Type": false, "Accept": false} {
		if CORSHeader(h) != want {
			t.Errorf("%s: %v", h, !want)
		}
	}
}

// Package guard keeps web pages from driving the box through a browser:
// the defence every listener of gantry's wears before its routes. A keyless
// gateway on loopback is safe from other machines, but not from a page in
// the user's own browser: DNS rebinding turns an attacker's name into
// 127.0.0.1 (Ollama's CVE-2024-28224), and a cross-site form or no-cors
// fetch reaches any local port. So:
//
//   - on a loopback listener only loopback Host names (and allowed_hosts)
//     are answered;
//   - a request a browser marks as coming from another site is refused
//     unless its origin is in cors.allowed_origins;
//   - a state-changing admin request needs a JSON content type, which no
//     cross-site page can send without a CORS preflight;
//   - gantry answers CORS itself (nobody by default) and never relays an
//     engine's CORS headers.
package guard

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/config"
)

// Policy is what one listener lets through; Update swaps it on a reload.
type Policy struct {
	p atomic.Pointer[rules]
}

type rules struct {
	loopback bool     // the listener only takes local connections: check Host
	hosts    []string // allowed_hosts, lower case, without port
	origins  []string // cors.allowed_origins, e.g. http://localhost:8080
}

// New returns the policy of a listener on listen.
func New(listen string, allowedHosts, allowedOrigins []string) *Policy {
	p := &Policy{}
	p.Update(listen, allowedHosts, allowedOrigins)
	return p
}

// Update replaces the policy.
func (p *Policy) Update(listen string, allowedHosts, allowedOrigins []string) {
	r := &rules{loopback: config.IsLoopback(listen)}
	for _, h := range allowedHosts {
		r.hosts = append(r.hosts, strings.ToLower(strings.TrimSuffix(h, ".")))
	}
	for _, o := range allowedOrigins {
		r.origins = append(r.origins, strings.TrimSuffix(strings.ToLower(o), "/"))
	}
	p.p.Store(r)
}

// LoopbackHost reports whether a Host header names this machine by a
// loopback name or address: localhost (and *.localhost, which browsers
// resolve to loopback themselves), 127.0.0.0/8, ::1. Never 0.0.0.0, which
// some browsers let pages reach.
func LoopbackHost(host string) bool {
	h := hostOnly(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func hostOnly(host string) string {
	h := strings.ToLower(host)
	if sh, _, err := net.SplitHostPort(h); err == nil {
		h = sh
	}
	return strings.TrimSuffix(strings.Trim(h, "[]"), ".")
}

// Wrap puts the policy in front of next. admin reports whether a path is
// the admin API's (whose state-changing requests need JSON).
func (p *Policy) Wrap(next http.Handler, admin func(path string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ru := p.p.Load()
		if ru.loopback && r.Host != "" && !LoopbackHost(r.Host) && !slices.Contains(ru.hosts, hostOnly(r.Host)) {
			apierr.Write(w, http.StatusForbidden, "permission_error", "host_not_allowed",
				"gantry answers requests for "+quote(r.Host)+" only if that name is listed in allowed_hosts: "+
					"it listens on loopback, where any other name means a web page that rebound its DNS to this machine")
			return
		}
		origin := r.Header.Get("Origin")
		allowed := origin != "" && ru.allowsOrigin(origin)
		if r.Method == http.MethodOptions && origin != "" {
			preflight(w, r, allowed)
			return
		}
		if crossSite(r) && !allowed {
			apierr.Write(w, http.StatusForbidden, "permission_error", "cross_site_request",
				"a web page on another site may not use gantry; list its origin in cors.allowed_origins if it should")
			return
		}
		if admin(r.URL.Path) && changesState(r.Method) && !isJSON(r.Header.Get("Content-Type")) {
			apierr.Write(w, http.StatusUnsupportedMediaType, "invalid_request_error", "json_required",
				"admin requests that change something need Content-Type: application/json")
			return
		}
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "X-Gantry-Served-By, X-Gantry-Fallback-For, Retry-After")
		}
		next.ServeHTTP(w, r)
	})
}

func (ru *rules) allowsOrigin(origin string) bool {
	o := strings.TrimSuffix(strings.ToLower(origin), "/")
	return slices.Contains(ru.origins, o) || slices.Contains(ru.origins, "*")
}

// crossSite reports whether a browser says the request comes from a page
// of another origin: Sec-Fetch-Site (every current browser sends it), or
// an Origin that is not the one the request is addressed to.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	case "same-origin", "none":
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false // not a browser, or a same-origin GET
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return true // "null": a sandboxed frame or a file: page
	}
	return !strings.EqualFold(u.Host, r.Host)
}

func changesState(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// preflight answers a CORS preflight: the allowed origin gets the methods
// and headers its clients send; any other gets 403.
func preflight(w http.ResponseWriter, r *http.Request, allowed bool) {
	if !allowed {
		apierr.Write(w, http.StatusForbidden, "permission_error", "cross_site_request",
			"origin "+quote(r.Header.Get("Origin"))+" is not in cors.allowed_origins")
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key, Anthropic-Version, Anthropic-Beta, OpenAI-Organization, OpenAI-Project")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// CORSHeader reports whether a response header belongs to CORS; gantry
// sets those itself and never passes an engine's on (llama-server reflects
// any origin, vLLM sends *).
func CORSHeader(name string) bool {
	return strings.HasPrefix(http.CanonicalHeaderKey(name), "Access-Control-")
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s) + `"`
}

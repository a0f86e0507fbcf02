// Package auth checks the bearer keys of the gateway and the admin API and
// refuses in the OpenAI shape clients (Cursor, Open WebUI) understand.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/gantryhq/gantry/internal/apierr"
)

// Keys holds the gateway's and the admin API's keys; Update swaps them
// (a config reload) without a restart.
type Keys struct {
	p atomic.Pointer[keySet]
}

type keySet struct {
	api   [][32]byte
	admin [][32]byte
	// replaced is closed when Update replaces this set: requests admitted
	// under it check their key again.
	replaced chan struct{}
}

// New returns the key checker; admin falls back to apiKeys when empty.
func New(apiKeys, adminKeys []string) *Keys {
	k := &Keys{}
	k.Update(apiKeys, adminKeys)
	return k
}

// Update replaces the keys.
func (k *Keys) Update(apiKeys, adminKeys []string) {
	ks := &keySet{replaced: make(chan struct{})}
	for _, s := range apiKeys {
		ks.api = append(ks.api, sha256.Sum256([]byte(s)))
	}
	if len(adminKeys) == 0 {
		adminKeys = apiKeys
	}
	for _, s := range adminKeys {
		ks.admin = append(ks.admin, sha256.Sum256([]byte(s)))
	}
	if old := k.p.Swap(ks); old != nil {
		close(old.replaced)
	}
}

// Open reports whether the gateway needs no key.
func (k *Keys) Open() bool { return len(k.p.Load().api) == 0 }

// bearer returns the key a request presents: "Authorization: Bearer K", or
// "x-api-key: K" as some clients send.
func bearer(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), true
		}
		return "", false
	}
	if h := r.Header.Get("X-Api-Key"); h != "" {
		return h, true
	}
	return "", false
}

// Name names the key a request presents, for logs: "key N" for the Nth of
// auth.api_keys, "admin key N" for one of auth.admin_keys only, "" when
// there is none or it is not known. The key itself is never shown.
func (k *Keys) Name(r *http.Request) string {
	key, ok := bearer(r)
	if !ok || key == "" {
		return ""
	}
	ks := k.p.Load()
	if i := index(key, ks.api); i >= 0 {
		return fmt.Sprintf("key %d", i+1)
	}
	if i := index(key, ks.admin); i >= 0 {
		return fmt.Sprintf("admin key %d", i+1)
	}
	return ""
}

// index is the position of key in set (-1: none), comparing every entry
// in constant time.
func index(key string, set [][32]byte) int {
	h := sha256.Sum256([]byte(key))
	at := -1
	for i, s := range set {
		if subtle.ConstantTimeCompare(h[:], s[:]) == 1 {
			at = i
		}
	}
	return at
}

// match compares in constant time (over hashes, so lengths leak nothing).
func match(key string, set [][32]byte) bool {
	h := sha256.Sum256([]byte(key))
	ok := 0
	for _, s := range set {
		ok |= subtle.ConstantTimeCompare(h[:], s[:])
	}
	return ok == 1
}

// Gateway requires an API key (when any is configured), refusing in the
// OpenAI shape.
func (k *Keys) Gateway(next http.Handler) http.Handler { return k.GatewayShaped(apierr.Write)(next) }

// GatewayShaped is Gateway refusing in the shape write writes (Anthropic's
// clients read another one).
func (k *Keys) GatewayShaped(write func(w http.ResponseWriter, status int, typ, code, msg string)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler { return k.gateway(next, write) }
}

func (k *Keys) gateway(next http.Handler, write func(w http.ResponseWriter, status int, typ, code, msg string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks := k.p.Load()
		if len(ks.api) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		key, ok := bearer(r)
		if !ok {
			write(w, http.StatusUnauthorized, "invalid_request_error", "missing_api_key",
				"You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>' (one of gantry's auth.api_keys).")
			return
		}
		if !match(key, ks.api) && !match(key, ks.admin) { // an admin key may use the gateway too
			write(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
				"Incorrect API key provided. Use one of gantry's auth.api_keys.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Admin requires an admin key (when any key is configured). A valid
// gateway key that is not an admin key gets 403, not 401: it is known, but
// not allowed here. A request admitted with a key that a reload then
// removes (or admitted without one before keys were set) is cut: an open
// log or event stream does not outlive its key.
func (k *Keys) Admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks := k.p.Load()
		key, ok := bearer(r)
		if len(ks.admin) == 0 {
			next.ServeHTTP(w, k.revocable(r, ks, key))
			return
		}
		switch {
		case !ok:
			apierr.Write(w, http.StatusUnauthorized, "invalid_request_error", "missing_api_key",
				"The admin API needs a key: send 'Authorization: Bearer <admin key>' (gantry: --token or GANTRY_TOKEN).")
		case match(key, ks.admin):
			next.ServeHTTP(w, k.revocable(r, ks, key))
		case match(key, ks.api):
			apierr.Write(w, http.StatusForbidden, "permission_error", "admin_key_required",
				"This key may use the gateway but not the admin API; use one of auth.admin_keys.")
		default:
			apierr.Write(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
				"Incorrect API key provided for the admin API.")
		}
	})
}

// revocable returns r with a context that ends when the keys are replaced
// by a set that no longer admits key.
func (k *Keys) revocable(r *http.Request, ks *keySet, key string) *http.Request {
	ctx, cancel := context.WithCancel(r.Context())
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ks.replaced:
			}
			ks = k.p.Load()
			if len(ks.admin) > 0 && (key == "" || !match(key, ks.admin)) {
				return
			}
		}
	}()
	return r.WithContext(ctx)
}

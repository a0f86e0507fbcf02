// Package auth checks the bearer keys of the gateway and the admin API and
// refuses in the OpenAI shape clients (Cursor, Open WebUI) understand. A
// key is found by its hash in one map look-up, whatever the number of keys;
// the request then carries who it is (a *Key: the key's name, its models,
// its limits, its priority) in its context. The key itself is never kept,
// shown or logged: only its name.
package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/limits"
)

// Keys holds the gateway's and the admin API's keys; Update and Set swap
// them (a config reload) without a restart.
type Keys struct {
	p atomic.Pointer[keySet]
}

type keySet struct {
	byHash map[[32]byte]*Key
	byName map[string]*Key
	// open: the gateway takes requests without a key (no api_keys and no
	// named keys); adminOpen: the admin API does (no key at all).
	open, adminOpen bool
	// names are every key's name, in config order (lists first).
	names []string
	// replaced ends when Set replaces this set: requests admitted under it
	// check their key again.
	replaced context.Context
	replace  context.CancelFunc
}

// New returns the key checker of the api_keys and admin_keys lists; admin
// falls back to apiKeys when empty.
func New(apiKeys, adminKeys []string) *Keys {
	return FromConfig(config.Auth{APIKeys: apiKeys, AdminKeys: adminKeys})
}

// FromConfig returns the key checker of a config's auth: section.
func FromConfig(a config.Auth) *Keys {
	k := &Keys{}
	k.Set(a)
	return k
}

// Update replaces the keys with the two lists' (tests; Set takes them all).
func (k *Keys) Update(apiKeys, adminKeys []string) {
	k.Set(config.Auth{APIKeys: apiKeys, AdminKeys: adminKeys})
}

// Set replaces the keys with a config's. A key that keeps its name and
// limits keeps where it stands in them (a reload does not refill buckets).
func (k *Keys) Set(a config.Auth) {
	old := k.p.Load()
	ks := build(a, old)
	if old := k.p.Swap(ks); old != nil {
		old.replace()
		if !ks.open { // an open gateway takes every request: nothing to cut
			for h, o := range old.byHash {
				if ks.byHash[h] == nil {
					o.end(ErrKeyRemoved)
				}
			}
		}
	}
}

// build makes the key set of a config; old (nil at first) lends its
// limits' state to keys of the same name and limits.
func build(a config.Auth, old *keySet) *keySet {
	ks := &keySet{byHash: map[[32]byte]*Key{}, byName: map[string]*Key{}, open: a.GatewayOpen()}
	ks.replaced, ks.replace = context.WithCancel(context.Background())
	prev := map[string]*limits.Key{}
	var was map[[32]byte]*Key
	if old != nil {
		was = old.byHash
		for _, o := range old.byHash {
			if o.Limit != nil {
				prev[o.Name] = o.Limit
			}
		}
	}
	add := func(secret string, key *Key) {
		h := sha256.Sum256([]byte(secret))
		if have, ok := ks.byHash[h]; ok { // in both lists: one admin key
			have.Admin = have.Admin || key.Admin
			return
		}
		if o := was[h]; o != nil { // the same secret: what it admitted goes on
			key.alive, key.end = o.alive, o.end
		} else {
			key.alive, key.end = context.WithCancelCause(context.Background())
		}
		if l := key.limitsOf(); !l.None() {
			if p := prev[key.Name]; p != nil && p.Limits() == l {
				key.Limit = p
			} else {
				key.Limit = limits.New(l)
			}
		}
		ks.byHash[h] = key
		ks.byName[key.Name] = key
		ks.names = append(ks.names, key.Name)
	}
	listAdmin := len(a.AdminKeys) == 0 // admin_keys falls back to api_keys
	for i, s := range a.APIKeys {
		add(s, &Key{Name: config.KeyName(i, false), Admin: listAdmin})
	}
	for i, s := range a.AdminKeys {
		add(s, &Key{Name: config.KeyName(i, true), Admin: true})
	}
	for _, name := range slices.Sorted(maps.Keys(a.Keys)) {
		c := a.Keys[name]
		if c == nil || c.Key == "" {
			continue
		}
		add(c.Key, &Key{Name: name, Admin: c.Admin, Batch: c.Priority == config.PriorityBatch,
			models: c.Models, conf: c})
	}
	ks.adminOpen = len(ks.byHash) == 0
	return ks
}

// Open reports whether the gateway needs no key.
func (k *Keys) Open() bool { return k.p.Load().open }

// Names are the names of every key, for metrics labels: their number is
// bounded by the config.
func (k *Keys) Names() []string { return append([]string(nil), k.p.Load().names...) }

// ByName returns the key of that name (nil: none), for counting an
// answer's tokens against its limits.
func (k *Keys) ByName(name string) *Key { return k.p.Load().byName[name] }

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

// lookup finds the key a request presents (nil: none, or not known). The
// look-up is by the key's SHA-256: what its timing could tell is about a
// hash, whose preimage it does not give.
func (ks *keySet) lookup(r *http.Request) *Key {
	key, ok := bearer(r)
	if !ok || key == "" {
		return nil
	}
	return ks.byHash[sha256.Sum256([]byte(key))]
}

// Name names the key a request presents, for logs: its name in auth.keys,
// "key N" for the Nth of auth.api_keys, "admin key N" for one of
// auth.admin_keys only, "" when there is none or it is not known. The key
// itself is never shown.
func (k *Keys) Name(r *http.Request) string {
	if key := From(r.Context()); key != nil {
		return key.Name
	}
	if key := k.p.Load().lookup(r); key != nil {
		return key.Name
	}
	return ""
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
		if ks.open {
			next.ServeHTTP(w, r)
			return
		}
		if _, ok := bearer(r); !ok {
			write(w, http.StatusUnauthorized, "invalid_request_error", "missing_api_key",
				"You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>' (one of gantry's auth.api_keys or auth.keys).")
			return
		}
		key := ks.lookup(r) // an admin key may use the gateway too
		if key == nil {
			write(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
				"Incorrect API key provided. Use one of gantry's auth.api_keys or auth.keys.")
			return
		}
		// A reload that removes the key cuts what it still has open (a
		// stream, a request waiting for its model), as on the admin API:
		// the key's own context ends then. No goroutine waits per request.
		ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), ctxKey{}, key))
		stop := context.AfterFunc(key.alive, func() { cancel(context.Cause(key.alive)) })
		defer func() {
			stop()
			cancel(nil)
		}()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// ErrKeyRemoved is why a request admitted with a key ended: a reload
// removed the key while the request was still open.
var ErrKeyRemoved = errors.New("the key this request was admitted with was removed by a config reload")

// Admin requires an admin key (when any key is configured). A valid
// gateway key that is not an admin key gets 403, not 401: it is known, but
// not allowed here. A request admitted with a key that a reload then
// removes (or admitted without one before keys were set) is cut: an open
// log or event stream does not outlive its key.
func (k *Keys) Admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks := k.p.Load()
		key, ok := bearer(r)
		if ks.adminOpen {
			next.ServeHTTP(w, k.revocable(r, ks, key))
			return
		}
		who := ks.lookup(r)
		switch {
		case !ok:
			apierr.Write(w, http.StatusUnauthorized, "invalid_request_error", "missing_api_key",
				"The admin API needs a key: send 'Authorization: Bearer <admin key>' (gantry: --token or GANTRY_TOKEN).")
		case who != nil && who.Admin:
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, who))
			next.ServeHTTP(w, k.revocable(r, ks, key))
		case who != nil:
			apierr.Write(w, http.StatusForbidden, "permission_error", "admin_key_required",
				"This key may use the gateway but not the admin API; use one of auth.admin_keys, or a key of auth.keys with admin: true.")
		default:
			apierr.Write(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
				"Incorrect API key provided for the admin API.")
		}
	})
}

// revocable returns r with a context that ends when the keys are replaced
// by a set that no longer admits key to the admin API.
func (k *Keys) revocable(r *http.Request, ks *keySet, key string) *http.Request {
	ctx, cancel := context.WithCancel(r.Context())
	h := sha256.Sum256([]byte(key))
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ks.replaced.Done():
			}
			ks = k.p.Load()
			if who := ks.byHash[h]; !ks.adminOpen && (key == "" || who == nil || !who.Admin) {
				return
			}
		}
	}()
	return r.WithContext(ctx)
}

package auth

import (
	"context"
	"net/http"
	"slices"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/limits"
)

// Key is who a request is: one key of the config, by its name. A request
// the gateway admitted with a key carries it in its context (From).
type Key struct {
	// Name is the key's name in auth.keys, or "key N" / "admin key N" for
	// the lists'. The only thing gantry ever shows of a key.
	Name string
	// Admin: the key may use the admin API.
	Admin bool
	// Batch: the key's requests wait behind interactive ones, and never
	// switch a slot away from, nor evict, a model in interactive use.
	Batch bool
	// Limit is where the key stands in its limits (nil: it has none).
	Limit *limits.Key

	models []string    // the names and globs it sees; nil: every model
	conf   *config.Key // the named key's settings (nil: a list's key)
	// alive ends (end, with ErrKeyRemoved) when a reload removes the key:
	// the gateway requests admitted with it end too. A key whose secret
	// stays keeps its alive across reloads.
	alive context.Context
	end   context.CancelCauseFunc
}

type ctxKey struct{}

// From is the key a request was admitted with (nil: the gateway is open,
// or the request did not pass through Gateway or Admin).
func From(ctx context.Context) *Key {
	k, _ := ctx.Value(ctxKey{}).(*Key)
	return k
}

// Restricted reports whether the key sees only some models.
func (k *Key) Restricted() bool { return k != nil && k.models != nil }

// Sees reports whether the key may use the name (a model, an alias, a
// preset or a peer's model): one of its models matches it. A nil key (an
// open gateway) and a key without models: see every name.
func (k *Key) Sees(name string) bool {
	if k == nil || k.models == nil {
		return true
	}
	for _, p := range k.models {
		if config.MatchModel(p, name) {
			return true
		}
	}
	return false
}

// PriorityHeader lets a request set its own priority: any key may ask for
// batch; interactive is for admin keys (a batch key cannot raise itself).
const PriorityHeader = "X-Gantry-Priority"

// BatchFor reports whether a request waits as batch: its key's priority,
// or the priority header where the key may set it.
func (k *Key) BatchFor(r *http.Request) bool {
	batch := k != nil && k.Batch
	switch r.Header.Get(PriorityHeader) {
	case config.PriorityBatch:
		return true
	case config.PriorityInteractive:
		if k == nil || k.Admin {
			return false
		}
	}
	return batch
}

func (k *Key) limitsOf() limits.Limits {
	if k.conf == nil {
		return limits.Limits{}
	}
	return limits.Limits{RPM: k.conf.RPM, TPM: k.conf.TPM, Concurrency: k.conf.Concurrency}
}

// Visible filters names to those the key sees (all of them for a nil key).
func (k *Key) Visible(names []string) []string {
	if !k.Restricted() {
		return names
	}
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !k.Sees(n) })
}

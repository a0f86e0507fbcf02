package supervise

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/statefile"
)

// TokenEnv is the environment variable that carries an engine's identity:
// a random token per start. Unlike the command line, which a shell
// wrapper, a shebang or a Python entry point rewrites, the environment is
// inherited unchanged by whatever the argv becomes, and /proc shows it.
const TokenEnv = "GANTRY_ENGINE_TOKEN"

// Record is what gantry remembers of one engine process it started.
type Record struct {
	// Token is TokenEnv's value in the engine's environment.
	Token string `json:"token"`
	// PID leads the engine's process group; 0 while it is being spawned.
	PID int `json:"pid"`
	// StartTicks is the process's start time (/proc/PID/stat), so a pid
	// the kernel gave to another process is never mistaken for it.
	StartTicks uint64 `json:"start_ticks,omitempty"`
	// Spec is a hash of the launch (argv and environment): an engine is
	// adopted only if the config would start the same thing.
	Spec    string    `json:"spec"`
	Argv    []string  `json:"argv"`
	Port    int       `json:"port,omitempty"`
	Started time.Time `json:"started"`
	// Owner and OwnerTicks are the gantry that started (or adopted) the
	// engine: a record whose gantry is alive is never adopted nor swept
	// by another one (the root's lock keeps a second gantry out; this
	// holds even if the lock file was removed under a running gantry).
	Owner      int    `json:"owner,omitempty"`
	OwnerTicks uint64 `json:"owner_ticks,omitempty"`
}

// Registry is the file of the engine processes gantry runs
// (<root>/state/engines.json). A record is written before its process is
// spawned and again once its pid is known, so a gantry killed at any
// moment leaves a record of every engine it may have started; the next
// gantry adopts what is its own and healthy (Claim) and stops the rest
// (Sweep). A nil *Registry records nothing.
type Registry struct {
	path string

	mu     sync.Mutex
	cur    map[string]Record // this gantry's engines, by key (model name)
	prev   map[string]Record // left by the previous gantry, until claimed or swept
	others map[string]Record // a living other gantry's: kept in the file, never touched
}

// OpenRegistry reads the records a previous gantry left at path (a
// missing or damaged file leaves none).
func OpenRegistry(path string) *Registry {
	r := &Registry{path: path, cur: map[string]Record{}, prev: map[string]Record{}, others: map[string]Record{}}
	statefile.ReadJSON(path, &r.prev) //nolint:errcheck // a missing or damaged file adopts nothing
	for k, rec := range r.prev {
		if ownerAlive(rec) {
			r.others[k] = rec
			delete(r.prev, k)
		}
	}
	return r
}

// self is this gantry as a record's owner.
var self = sync.OnceValues(func() (int, uint64) { return os.Getpid(), startTicks(os.Getpid()) })

// ownerAlive reports whether rec's gantry is another living process.
func ownerAlive(rec Record) bool {
	pid, _ := self()
	if rec.Owner <= 0 || rec.Owner == pid || !groupLeaderAlive(rec.Owner) {
		return false
	}
	return rec.OwnerTicks == 0 || startTicks(rec.Owner) == rec.OwnerTicks
}

// Records are every engine recorded: this gantry's and those the last one
// left, unclaimed.
func (r *Registry) Records() []Record {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Record, 0, len(r.cur)+len(r.prev))
	for _, v := range r.prev {
		out = append(out, v)
	}
	for _, v := range r.cur {
		out = append(out, v)
	}
	return out
}

// put records key's engine (and writes the file at once).
func (r *Registry) put(key string, rec Record) {
	if r == nil {
		return
	}
	rec.Owner, rec.OwnerTicks = self()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur[key] = rec
	r.saveLocked()
}

// drop forgets key's engine if it is still the one with token.
func (r *Registry) drop(key, token string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec, ok := r.cur[key]; ok && rec.Token == token {
		delete(r.cur, key)
		r.saveLocked()
	}
}

// previous returns the record the last gantry left for key, unclaimed.
func (r *Registry) previous(key string) (Record, bool) {
	if r == nil {
		return Record{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.prev[key]
	return rec, ok
}

// claim moves key's previous record into this gantry's.
func (r *Registry) claim(key string, rec Record) {
	rec.Owner, rec.OwnerTicks = self()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.prev, key)
	r.cur[key] = rec
	r.saveLocked()
}

// saveLocked writes both sets: an unswept record must survive another
// crash too.
func (r *Registry) saveLocked() {
	all := make(map[string]Record, len(r.cur)+len(r.prev)+len(r.others))
	for k, v := range r.others {
		all[k] = v
	}
	for k, v := range r.prev {
		all[k] = v
	}
	for k, v := range r.cur {
		all[k] = v
	}
	if err := statefile.WriteJSON(r.path, all); err != nil {
		slog.Warn("could not record the running engines", "file", r.path, "err", err)
	}
}

// Sweep stops every engine the previous gantry left that nobody claimed
// (its config changed, it was unhealthy, or it is no longer configured) —
// so nothing is orphaned and no engine runs twice — and returns their keys.
func (r *Registry) Sweep(logger *slog.Logger, grace time.Duration) []string {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	left := r.prev
	r.prev = map[string]Record{}
	r.saveLocked()
	r.mu.Unlock()
	var swept []string
	for key, rec := range left {
		if pid := Locate(rec); pid > 0 {
			logger.Warn("stopping an engine a previous gantry left behind", "model", key, "pid", pid)
			KillGroup(pid, grace)
			swept = append(swept, key)
		}
	}
	slices.Sort(swept)
	return swept
}

// Locate returns the pid of the living process group leader with rec's
// identity: its recorded pid when that process still carries the token
// (and started when recorded), else any process that carries the token —
// an engine spawned just before its gantry died, whose pid was never
// written. 0 when none lives.
func Locate(rec Record) int {
	if rec.Token == "" {
		return 0
	}
	if rec.PID > 0 && hasToken(rec.PID, rec.Token) && (rec.StartTicks == 0 || startTicks(rec.PID) == rec.StartTicks) {
		return rec.PID
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !hasToken(pid, rec.Token) {
			continue
		}
		if pg := ProcessGroup(pid); pg > 0 {
			return pg
		}
		return pid
	}
	return 0
}

// hasToken reports whether the living process pid carries token in its
// environment.
func hasToken(pid int, token string) bool {
	if !groupLeaderAlive(pid) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	want := []byte(TokenEnv + "=" + token)
	for _, kv := range bytes.Split(b, []byte{0}) {
		if bytes.Equal(kv, want) {
			return true
		}
	}
	return false
}

// newToken returns a fresh random identity.
func newToken() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // never fails on Linux
	return hex.EncodeToString(b[:])
}

// specOf hashes what an engine is started as.
func specOf(argv, env []string, container string) string {
	h := sha256.New()
	for _, part := range [][]string{argv, env, {container}} {
		for _, s := range part {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Package limits keeps one key's limits: requests per minute and tokens
// per minute, each a bucket refilled continuously over a minute (the
// generic cell rate algorithm: one time per bucket, no timers), and
// requests in flight. Tokens are spent after an answer, from its usage, so
// a request is refused once the last minute's tokens reach the limit, not
// before it is sent.
package limits

import (
	"sync"
	"time"
)

// Window is the span the limits are per: a bucket holds a minute's worth
// and refills over a minute.
const Window = time.Minute

// Limits are a key's limits; 0 is none.
type Limits struct {
	RPM, TPM, Concurrency int
}

// None reports whether no limit is set.
func (l Limits) None() bool { return l.RPM <= 0 && l.TPM <= 0 && l.Concurrency <= 0 }

// The limits a refusal names, as OpenAI's error type says it.
const (
	Requests    = "requests"
	Tokens      = "tokens"
	Concurrency = "concurrency"
)

// Key is one key's limits and where it stands. Safe for concurrent use.
type Key struct {
	l Limits
	// reqPer and tokPer are the refill times of one request and one token.
	reqPer, tokPer time.Duration

	mu sync.Mutex
	// reqTAT and tokTAT are the buckets' theoretical arrival times: when
	// each would be full again. A bucket is empty when its TAT is a whole
	// Window ahead of now.
	reqTAT, tokTAT time.Time
	inflight       int
}

// New returns the state of a key with limits l.
func New(l Limits) *Key {
	k := &Key{l: l}
	if l.RPM > 0 {
		k.reqPer = Window / time.Duration(l.RPM)
	}
	if l.TPM > 0 {
		k.tokPer = Window / time.Duration(l.TPM)
	}
	return k
}

// Limits are the key's limits.
func (k *Key) Limits() Limits { return k.l }

// State is where a key stands after a decision: what the x-ratelimit-*
// headers say. Reset is the time until a bucket is full again.
type State struct {
	RequestsLeft  int
	RequestsReset time.Duration
	TokensLeft    int
	TokensReset   time.Duration
	// Limit names the limit that refused the request ("" when admitted);
	// RetryAfter is when it would be admitted, and Used what the limit
	// counts now.
	Limit      string
	RetryAfter time.Duration
	Used       int
}

// Admit decides on a request at now. Admitted (st.Limit == ""), it counts
// against the requests per minute and the requests in flight until Done.
// Refused, nothing changes: st says which limit and when to come back.
func (k *Key) Admit(now time.Time) (st State) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st = k.stateLocked(now)
	switch {
	case k.tokPer > 0 && k.tokTAT.Sub(now) >= Window:
		// A minute's tokens are spent: back when one token is free.
		st.Limit, st.RetryAfter, st.Used = Tokens, k.tokTAT.Sub(now)-Window+k.tokPer, k.l.TPM
	case k.l.Concurrency > 0 && k.inflight >= k.l.Concurrency:
		// No time is known when one ends; a second is a fair guess.
		st.Limit, st.RetryAfter, st.Used = Concurrency, time.Second, k.inflight
	case k.reqPer > 0 && k.reqTAT.Sub(now) > Window-k.reqPer:
		st.Limit, st.RetryAfter, st.Used = Requests, k.reqTAT.Sub(now)-(Window-k.reqPer), k.l.RPM
	default:
		if k.reqPer > 0 {
			k.reqTAT = later(k.reqTAT, now).Add(k.reqPer)
			st.RequestsLeft, st.RequestsReset = left(k.reqTAT, now, k.reqPer), k.reqTAT.Sub(now)
		}
		k.inflight++
	}
	return st
}

// Done ends a request Admit took in.
func (k *Key) Done() {
	k.mu.Lock()
	k.inflight--
	k.mu.Unlock()
}

// Spend counts an answer's tokens (prompt and completion) at now.
func (k *Key) Spend(now time.Time, tokens int) {
	if k.tokPer <= 0 || tokens <= 0 {
		return
	}
	k.mu.Lock()
	k.tokTAT = later(k.tokTAT, now).Add(time.Duration(tokens) * k.tokPer)
	k.mu.Unlock()
}

// State is where the key stands at now.
func (k *Key) State(now time.Time) State {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stateLocked(now)
}

func (k *Key) stateLocked(now time.Time) State {
	var st State
	if k.reqPer > 0 {
		st.RequestsLeft, st.RequestsReset = left(k.reqTAT, now, k.reqPer), max(0, k.reqTAT.Sub(now))
	}
	if k.tokPer > 0 {
		st.TokensLeft, st.TokensReset = left(k.tokTAT, now, k.tokPer), max(0, k.tokTAT.Sub(now))
	}
	return st
}

// left is how many units a bucket whose TAT is tat has left at now.
func left(tat, now time.Time, per time.Duration) int {
	used := max(0, tat.Sub(now))
	return max(0, int((Window-used)/per))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

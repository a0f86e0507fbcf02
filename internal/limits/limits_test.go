package limits

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// TestRequestsPerMinute: a key of 5 rpm takes 5 at once, then one every
// 12 s; the refusal says when, and the headers' numbers count down.
func TestRequestsPerMinute(t *testing.T) {
	k := New(Limits{RPM: 5})
	for i := 0; i < 5; i++ {
		st := k.Admit(t0)
		if st.Limit != "" {
			t.Fatalf("request %d refused: %+v", i+1, st)
		}
		if st.RequestsLeft != 4-i {
			t.Errorf("request %d: %d left, want %d", i+1, st.RequestsLeft, 4-i)
		}
		k.Done()
	}
	st := k.Admit(t0)
	if st.Limit != Requests || st.RetryAfter != 12*time.Second || st.Used != 5 {
		t.Fatalf("6th: %+v, want refused by requests, retry after 12s", st)
	}
	if st.RequestsReset != time.Minute {
		t.Errorf("reset %s, want 1m (the bucket is full a minute from now)", st.RequestsReset)
	}
	if st := k.Admit(t0.Add(12*time.Second - time.Millisecond)); st.Limit != Requests {
		t.Errorf("a millisecond early: admitted")
	}
	if st := k.Admit(t0.Add(12 * time.Second)); st.Limit != "" {
		t.Errorf("at the retry time: %+v", st)
	}
	// A quiet minute fills the bucket again.
	if st := k.State(t0.Add(2 * time.Minute)); st.RequestsLeft != 5 || st.RequestsReset != 0 {
		t.Errorf("after a quiet minute: %+v", st)
	}
}

// TestTokensPerMinute: tokens are spent after the answers; once a minute's
// worth is spent the next request waits until one token is free again.
func TestTokensPerMinute(t *testing.T) {
	k := New(Limits{TPM: 600}) // 10 tokens a second
	if st := k.Admit(t0); st.Limit != "" || st.TokensLeft != 600 {
		t.Fatalf("first: %+v", st)
	}
	k.Done()
	k.Spend(t0, 450)
	if st := k.Admit(t0); st.Limit != "" || st.TokensLeft != 150 {
		t.Fatalf("after 450 tokens: %+v", st)
	}
	k.Done()
	k.Spend(t0, 300) // the answer overshoots: 750 in the last minute
	st := k.Admit(t0)
	if st.Limit != Tokens {
		t.Fatalf("after 750 of 600 tokens: admitted %+v", st)
	}
	// 150 over plus one token at 10 a second.
	if want := 15*time.Second + 100*time.Millisecond; st.RetryAfter != want {
		t.Errorf("retry after %s, want %s", st.RetryAfter, want)
	}
	if st := k.Admit(t0.Add(st.RetryAfter)); st.Limit != "" || st.TokensLeft != 1 {
		t.Errorf("at the retry time: %+v", st)
	}
}

// TestConcurrency: requests in flight count until Done; a refused one
// changes nothing (it does not use up a request of the minute).
func TestConcurrency(t *testing.T) {
	k := New(Limits{Concurrency: 2, RPM: 3})
	k.Admit(t0)
	k.Admit(t0)
	if st := k.Admit(t0); st.Limit != Concurrency || st.Used != 2 {
		t.Fatalf("third at once: %+v", st)
	}
	k.Done()
	if st := k.Admit(t0); st.Limit != "" || st.RequestsLeft != 0 {
		t.Fatalf("after one ended: %+v (the refused one must not have counted)", st)
	}
}

// TestParallel: under contention exactly the limit gets in.
func TestParallel(t *testing.T) {
	k := New(Limits{RPM: 50})
	var wg sync.WaitGroup
	var mu sync.Mutex
	in := 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st := k.Admit(t0); st.Limit == "" {
				mu.Lock()
				in++
				mu.Unlock()
				k.Done()
			}
		}()
	}
	wg.Wait()
	if in != 50 {
		t.Errorf("%d admitted, want 50", in)
	}
}

func TestNone(t *testing.T) {
	if !(Limits{}).None() || (Limits{TPM: 1}).None() {
		t.Error("None")
	}
	k := New(Limits{})
	for i := 0; i < 1000; i++ {
		if st := k.Admit(t0); st.Limit != "" {
			t.Fatal(st)
		}
	}
}

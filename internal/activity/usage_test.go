package activity

import (
	"sync"
	"testing"
	"time"
)

// TestUsage: the log's records totalled by key, model and day — requests,
// errors, tokens in and out, engine-seconds held — since a time.
func TestUsage(t *testing.T) {
	now := time.Date(2026, 5, 8, 12, 0, 0, 0, time.Local)
	s := open(t, t.TempDir(), 30, 1000, func() time.Time { return now })
	defer s.Close()
	add := func(ago time.Duration, key, model, served string, status, in, out int, held time.Duration) {
		p := Pending{Record: Record{Time: now.Add(-ago), Key: key, Model: model, Served: served, Status: status}, Held: held}
		if in+out > 0 {
			p.Tokens = &Tokens{Prompt: in, Completion: out}
		}
		s.Add(p)
	}
	add(9*24*time.Hour, "alice", "scout", "scout", 200, 1000, 1000, time.Hour) // before since
	add(2*24*time.Hour, "alice", "scout", "scout", 200, 10, 20, 1500*time.Millisecond)
	add(3*time.Hour, "alice", "qwen", "qwen3", 200, 5, 7, 500*time.Millisecond)
	add(2*time.Hour, "bot", "embed", "embed", 200, 100, 0, 250*time.Millisecond)
	add(time.Hour, "bot", "embed", "", 429, 0, 0, 0)
	add(time.Minute, "", "scout", "scout", 200, 1, 1, time.Second)
	since := now.Add(-7 * 24 * time.Hour)
	u, err := s.Usage(ByKey, since)
	if err != nil {
		t.Fatal(err)
	}
	want := []UsageRow{
		{Key: "-", Counts: Counts{Requests: 1, PromptTokens: 1, CompletionTokens: 1}, EngineSeconds: 1},
		{Key: "alice", Counts: Counts{Requests: 2, PromptTokens: 15, CompletionTokens: 27}, EngineSeconds: 2},
		{Key: "bot", Counts: Counts{Requests: 2, Errors: 1, PromptTokens: 100}, EngineSeconds: 0.25},
	}
	if len(u.Rows) != len(want) {
		t.Fatalf("by key: %+v", u.Rows)
	}
	for i := range want {
		if u.Rows[i] != want[i] {
			t.Errorf("by key, row %d: %+v, want %+v", i, u.Rows[i], want[i])
		}
	}
	u, _ = s.Usage(ByModel, since)
	if len(u.Rows) != 3 || u.Rows[2].Requests != 2 || u.Rows[0].Model != "embed" || u.Rows[0].Requests != 2 || u.Rows[1].Model != "qwen3" {
		t.Errorf("by model: %+v", u.Rows)
	}
	u, _ = s.Usage(ByDay, since)
	if len(u.Rows) != 2 || u.Rows[0].Day != "2026-05-06" || u.Rows[1].Day != "2026-05-08" || u.Rows[1].Requests != 4 {
		t.Errorf("by day: %+v", u.Rows)
	}
	if _, err := s.Usage("week", since); err == nil {
		t.Error("by=week accepted")
	}
}

// TestMemoryOnly: without a folder the store writes nothing, and every
// record still reaches OnRecord with its usage read.
func TestMemoryOnly(t *testing.T) {
	var mu sync.Mutex
	var got []Record
	s, err := Open(Options{OnRecord: func(r Record) { mu.Lock(); got = append(got, r); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(Pending{Record: Record{Key: "alice", Status: 200}, Tail: []byte(`"usage":{"prompt_tokens":3,"completion_tokens":4}}`)})
	s.Close()
	if len(got) != 1 || got[0].Tokens == nil || got[0].Tokens.Prompt != 3 || got[0].Key != "alice" {
		t.Errorf("OnRecord saw %+v", got)
	}
	if res, err := s.Query(Filter{}); err != nil || len(res.Records) != 0 {
		t.Errorf("a memory-only store answered %+v, %v", res, err)
	}
}

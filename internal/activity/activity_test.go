package activity

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseUsage(t *testing.T) {
	cases := []struct {
		name, tail string
		want       *Tokens
	}{
		{"chat answer", `{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":8}}}`,
			&Tokens{12, 5, 8}},
		{"stream's usage chunk", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n" +
			"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":16}}\n\ndata: [DONE]\n\n", &Tokens{3, 16, 0}},
		{"usage null only", "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\ndata: [DONE]\n\n", nil},
		{"responses", `event: response.completed` + "\n" + `data: {"type":"response.completed","response":{"usage":{"input_tokens":9,"output_tokens":4,"input_tokens_details":{"cached_tokens":2}}}}`,
			&Tokens{9, 4, 2}},
		{"anthropic", "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":7,\"output_tokens\":30,\"cache_read_input_tokens\":1}}\n\n",
			&Tokens{7, 30, 1}},
		{"ollama", `{"model":"q","done":true,"total_duration":1,"prompt_eval_count":26,"eval_count":290}` + "\n", &Tokens{26, 290, 0}},
		{"cut at the start", `ge":{"prompt_tokens":1}} ... "usage":{"prompt_tokens":4,"completion_tokens":2}}`, &Tokens{4, 2, 0}},
		{"none", `{"data":[{"embedding":[0.1]}]}`, nil},
	}
	for _, c := range cases {
		got := ParseUsage([]byte(c.tail))
		if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestFinish(t *testing.T) {
	p := Pending{Record: Record{Status: 200, Stream: true}, Tail: []byte(`"usage":{"prompt_tokens":1,"completion_tokens":10}}`),
		TTFT: 100 * time.Millisecond, Duration: 600 * time.Millisecond}
	r := p.Finish()
	if r.TokensPerSecond != 20 || r.TTFTMS != 100 || r.DurationMS != 600 {
		t.Errorf("%+v", r)
	}
	e := Pending{Record: Record{Status: 404}, ErrorBody: []byte(`{"error":{"message":"x","type":"invalid_request_error","code":"model_not_found"}}`)}
	if r := e.Finish(); r.Error != "model_not_found" {
		t.Errorf("error code %q", r.Error)
	}
	a := Pending{Record: Record{Status: 401}, ErrorBody: []byte(`{"type":"error","error":{"type":"authentication_error","message":"x"}}`)}
	if r := a.Finish(); r.Error != "authentication_error" {
		t.Errorf("anthropic error %q", r.Error)
	}
}

// TestRatesMakeSense: a rate is the engine's own timing where the answer
// carries it, else tokens over the decode time of a stream, else over the
// whole request — never over a near-zero interval (a plain answer's time
// after its first byte read 359,332 tok/s).
func TestRatesMakeSense(t *testing.T) {
	usage := []byte(`{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":16}}`)
	cases := []struct {
		name           string
		stream         bool
		tail           []byte
		ttft, duration time.Duration
		want           float64
	}{
		// The whole answer arrived 45 µs after its first byte.
		{"plain answer: the whole request", false, usage, 799955 * time.Microsecond, 800 * time.Millisecond, 20},
		{"stream: after the first byte", true, usage, 200 * time.Millisecond, 1000 * time.Millisecond, 20},
		{"stream that came at once: the whole request", true, usage, 399990 * time.Microsecond, 400 * time.Millisecond, 40},
		{"everything at once: no rate", false, usage, 5 * time.Millisecond, 5 * time.Millisecond, 0},
		// llama-server's timings object (tools/server/server.cpp,
		// get_formated_timings), after the usage in its answer.
		{"llama-server's own timing", false, []byte(`{"usage":{"prompt_tokens":5,"completion_tokens":16},"timings":{"prompt_n":5,"prompt_ms":12.5,"predicted_n":16,"predicted_ms":400.0,"predicted_per_second":40.0}}`),
			990 * time.Millisecond, 1000 * time.Millisecond, 40},
		// Ollama's final object (api/types.go Metrics: durations in ns).
		{"Ollama's own timing", true, []byte(`{"model":"q","done":true,"prompt_eval_count":5,"eval_count":16,"eval_duration":200000000}` + "\n"),
			100 * time.Millisecond, 900 * time.Millisecond, 80},
	}
	for _, c := range cases {
		p := Pending{Record: Record{Status: 200, Stream: c.stream}, Tail: c.tail, TTFT: c.ttft, Duration: c.duration}
		if got := p.Finish().TokensPerSecond; got < c.want-0.01 || got > c.want+0.01 {
			t.Errorf("%s: %.2f tok/s, want %.2f", c.name, got, c.want)
		}
	}
}

func open(t *testing.T, dir string, days, rows int, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, KeepDays: days, KeepRows: rows, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func add(s *Store, at time.Time, model string, n int) {
	for i := 0; i < n; i++ {
		s.Add(Pending{Record: Record{Time: at.Add(time.Duration(i) * time.Millisecond), Model: model, Served: model, Status: 200,
			Tokens: &Tokens{Prompt: 1, Completion: 2}}})
	}
}

// TestKeptAcrossRestartsAndRetained: records survive a close and reopen;
// keep_rows bounds both what a query shows and what the files hold; a
// segment older than keep_days goes.
func TestKeptAcrossRestartsAndRetained(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := open(t, dir, 7, 100, clock)
	add(s, now.Add(-10*24*time.Hour), "old", 5) // past keep_days
	add(s, now.Add(-time.Hour), "a", 30)
	s.Close()

	s = open(t, dir, 7, 100, clock)
	res, err := s.Query(Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 30 || res.Records[0].Model != "a" || res.Records[29].Model != "a" {
		t.Fatalf("after a restart: %d records (the 5 past keep_days hidden), newest %+v", len(res.Records), res.Records[0])
	}
	add(s, now, "b", 200) // more than keep_rows: old segments go
	s.Close()
	s = open(t, dir, 7, 100, clock)
	defer s.Close()
	res, _ = s.Query(Filter{Limit: 1000})
	if len(res.Records) != 100 || res.Records[0].Model != "b" {
		t.Fatalf("keep_rows 100: %d records", len(res.Records))
	}
	rows := 0
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for _, f := range files {
		sg, _ := scan(f)
		rows += sg.rows
		if sg.last.Before(now.AddDate(0, 0, -7)) {
			t.Errorf("%s is past keep_days", f)
		}
	}
	if rows < 100 || rows > 110 {
		t.Errorf("the files hold %d rows for keep_rows 100", rows)
	}
	for _, r := range res.Records {
		if r.Model == "old" {
			t.Errorf("a record past keep_days is shown")
		}
	}
}

func TestQueryFiltersAndTotals(t *testing.T) {
	now := time.Now()
	s := open(t, t.TempDir(), 30, 1000, time.Now)
	defer s.Close()
	add(s, now.Add(-2*time.Hour), "a", 3)
	add(s, now.Add(-time.Minute), "a", 2)
	add(s, now.Add(-time.Minute), "b", 4)
	s.Add(Pending{Record: Record{Time: now, Model: "alias-of-b", Served: "b", Status: 502}})
	s.Close() // everything written
	s = open(t, s.o.Dir, 30, 1000, time.Now)
	res, err := s.Query(Filter{Model: "b", Since: now.Add(-time.Hour), Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 2 || res.Records[0].Status != 502 {
		t.Errorf("records %+v", res.Records)
	}
	if len(res.Totals) != 1 || res.Totals[0] != (Totals{Model: "b", Counts: Counts{Requests: 5, Errors: 1, PromptTokens: 4, CompletionTokens: 8}}) {
		t.Errorf("totals %+v", res.Totals)
	}
	all, _ := s.Query(Filter{Since: now.Add(-time.Hour)})
	if len(all.Records) != 7 || len(all.Totals) != 2 {
		t.Errorf("since an hour: %d records, totals %+v", len(all.Records), all.Totals)
	}
}

func TestFollowSeesNewRecords(t *testing.T) {
	s := open(t, t.TempDir(), 30, 1000, time.Now)
	defer s.Close()
	ch, cancel := s.Subscribe()
	defer cancel()
	add(s, time.Now(), "f", 1)
	select {
	case r := <-ch:
		if r.Model != "f" {
			t.Errorf("%+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no record followed")
	}
}

func TestTornLineIsSkipped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, fmt.Sprintf("%s%020d%s", segPrefix, 1, segSuffix))
	os.WriteFile(path, []byte(`{"time":"2026-11-30T00:00:00Z","model":"x","status":200}`+"\n"+`{"time":"2026-11-30T00:0`), 0o600)
	s := open(t, dir, 36500, 1000, time.Now)
	defer s.Close()
	res, err := s.Query(Filter{})
	if err != nil || len(res.Records) != 1 {
		t.Errorf("%v %+v", err, res.Records)
	}
}

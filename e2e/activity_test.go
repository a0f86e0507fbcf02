package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/gantryhq/gantry/internal/activity"
)

// TestActivityLog: every request through the gateway becomes a record
// with the engine's own token counts — from a plain answer, from a stream
// whose client asked for usage and from one that did not (which does not
// see the usage chunk gantry asked for) — and the key's name; the records
// survive a restart of gantry; `gantry activity` shows them and follows.
func TestActivityLog(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
auth: {api_keys: [sk-one, sk-two]}
models:
  m: {engine: sim, memory: 2GiB, aliases: [mine], args: [--tokens, 16, --model, e2e-activity]}
`)
	ctx := context.Background()
	one, two := d.oai("sk-one"), d.oai("sk-two")
	plain, err := one.Chat.Completions.New(ctx, chatParams("mine", "how are you today"))
	if err != nil {
		t.Fatal(err)
	}
	// A stream that asks for usage gets it, as the engine counted.
	p := chatParams("m", "hi")
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := two.Chat.Completions.NewStreaming(ctx, p)
	var asked openai.CompletionUsage
	for s.Next() {
		if c := s.Current(); c.Usage.TotalTokens > 0 {
			asked = c.Usage
		}
	}
	if s.Err() != nil || asked.CompletionTokens != 16 {
		t.Fatalf("stream with usage: %v %+v", s.Err(), asked)
	}
	// One that does not ask sees no usage chunk.
	s = one.Chat.Completions.NewStreaming(ctx, chatParams("m", "hi"))
	chunks := 0
	for s.Next() {
		chunks++
		if c := s.Current(); len(c.Choices) == 0 || c.Usage.TotalTokens > 0 {
			t.Errorf("the client got a usage chunk it did not ask for: %s", c.RawJSON())
		}
	}
	if s.Err() != nil || chunks == 0 {
		t.Fatalf("stream: %v, %d chunks", s.Err(), chunks)
	}

	records := func(d *daemon) []activity.Record {
		t.Helper()
		var res activity.Result
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			out, code := d.gantry("activity", "--json")
			if code != 0 {
				t.Fatalf("activity: %s", out)
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(res.Records) >= 3 {
				break
			}
		}
		return res.Records
	}
	check := func(recs []activity.Record) {
		t.Helper()
		if len(recs) != 3 {
			t.Fatalf("%d records: %+v", len(recs), recs)
		}
		// Newest first: the stream without usage, the one with, the plain answer.
		want := []struct {
			model, key    string
			stream        bool
			prompt, compl int
		}{
			{"m", "key 1", true, int(asked.PromptTokens), 16},
			{"m", "key 2", true, int(asked.PromptTokens), 16},
			{"mine", "key 1", false, int(plain.Usage.PromptTokens), int(plain.Usage.CompletionTokens)},
		}
		for i, w := range want {
			r := recs[i]
			if r.Model != w.model || r.Served != "m" || r.Key != w.key || r.Stream != w.stream || r.Status != 200 ||
				r.Tokens == nil || r.Tokens.Prompt != w.prompt || r.Tokens.Completion != w.compl || r.DurationMS <= 0 {
				t.Errorf("record %d: %+v %+v, want %+v", i, r, r.Tokens, w)
			}
		}
		if !recs[2].Cold || recs[2].WaitedMS <= 0 || recs[0].Cold {
			t.Errorf("the first request waited for the load, the others not: %+v", recs)
		}
	}
	check(records(d))

	// A restart loses nothing.
	d.stop()
	d = d.again()
	check(records(d))
	out, code := d.gantry("activity")
	if code != 0 || !strings.Contains(out, "mine → m") || !strings.Contains(out, "totals since 24h") || !strings.Contains(out, "key 2") {
		t.Errorf("activity:\n%s", out)
	}

	// -f prints each new request.
	cmd := d.command("activity", "-f", "--json", "--config", d.config)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The follower is subscribed once its request is in; retry until it sees one.
	deadline := time.After(20 * time.Second)
	for {
		if _, err := one.Chat.Completions.New(ctx, chatParams("m", "again")); err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-lines:
			var r activity.Record
			if json.Unmarshal([]byte(l), &r) != nil || r.Model != "m" || r.Tokens == nil {
				t.Errorf("followed: %s", l)
			}
			return
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			t.Fatal("activity -f printed nothing")
		}
	}
}

package e2e

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// TestFaultBatchAndInteractive: 50 clients with a batch key hammer two
// models on one slot (25 each, without pause) while 5 people with an
// interactive key chat with one of them. It proves both halves of the
// priority rule, each of which the row fails without:
//   - a batch request never switches the slot away from the model people
//     use: while they chat, the 25 batch clients of the other model wait
//     (its queue is full of them) and it never starts; once the people are
//     gone (and the slot's min_residency has passed) it starts and serves
//     them;
//   - interactive requests take the model's free places (max_concurrency
//     4) first: a person waits at most for one place to free — about one
//     request's time (350 ms here) — where, in turn with the 25 batch
//     clients of the same model, they would wait for about 25/4 of them.
//
// Measured on the shared 2-core machine: p50 352 ms, p99 355 ms (the 4
// places free in step); with admitsLocked ignoring the priority, p50
// 1.4 s, p99 14.4 s; with batchYieldsLocked never yielding, bulk started
// while people chatted and p99 was 3.5 s. The bound of 1 s sits between.
// Nobody's request is lost. Both rows go to RELIABILITY.md, the
// interactive one with its TTFT p50 and p99.
func TestFaultBatchAndInteractive(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
auth:
  keys:
    people: {key: sk-people-e2e, priority: interactive}
    agents: {key: sk-agents-e2e, priority: batch}
    ops: {key: sk-ops-e2e, admin: true}
slots:
  s: {port: PORTSLOT, min_residency: 2s}
models:
  chat: {engine: sim, memory: 4GiB, slot: s, max_concurrency: 4, queue_limit: 512, args: [--itl, 50ms, --tokens, "8", --load-time, 300ms]}
  bulk: {engine: sim, memory: 4GiB, slot: s, max_concurrency: 4, queue_limit: 512, args: [--itl, 50ms, --tokens, "8", --load-time, 300ms]}
`)
	batch := newTally("50 batch clients on two models of one slot, while 5 interactive chat")
	batch.key = "sk-agents-e2e"
	people := newTally("5 interactive clients chatting meanwhile")
	people.key = "sk-people-e2e"
	stopBatch, stopPeople := make(chan struct{}), make(chan struct{})
	only := func(model string) func() string { return func() string { return model } }

	// The people first: chat has the slot.
	pw := people.load(d.url, 5, true, only("chat"), stopPeople)
	waitCompleted(t, people, 10, 60*time.Second)
	people.mu.Lock()
	people.ttft = nil // chat's cold start is not what the row measures
	people.mu.Unlock()
	chatStarts, bulkStarts := d.starts("chat"), d.starts("bulk")
	bc := batch.load(d.url, 25, true, only("chat"), stopBatch)
	bb := batch.load(d.url, 25, true, only("bulk"), stopBatch)
	defer func() { batch.stopClients(); bc.Wait(); bb.Wait() }()

	// While the people chat, the slot stays chat's: watched the whole
	// time (a switch and back would leave the starts counted).
	window := map[bool]time.Duration{true: 6 * time.Second, false: 20 * time.Second}[testing.Short()]
	mostQueued := 0
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		chat, bulk := modelStatus(t, d, "chat"), modelStatus(t, d, "bulk")
		mostQueued = max(mostQueued, bulk.Queued)
		if chat.State != status.Ready || chat.Starts != chatStarts || bulk.Starts != bulkStarts {
			t.Errorf("the slot left chat while people chatted with it: chat %s (starts %d, were %d), bulk %s (starts %d, were %d)",
				chat.State, chat.Starts, chatStarts, bulk.State, bulk.Starts, bulkStarts)
			break
		}
	}
	// The fault was there: bulk's batch clients were all waiting for it.
	if mostQueued < 20 {
		t.Errorf("at most %d requests queued for bulk while people chatted, want the 25 batch clients' (no fault to yield to)", mostQueued)
	}
	close(stopPeople)
	pw.Wait()

	// The people gone, bulk's batch requests, waiting all along, get the
	// slot once chat's min_residency has passed, and are served.
	deadline := time.Now().Add(60 * time.Second)
	for d.starts("bulk") == bulkStarts || servedOK(t, d, "bulk") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("bulk never served its waiting batch requests once the people were gone (starts %d, %d answered 200)", d.starts("bulk"), servedOK(t, d, "bulk"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stopBatch)
	bc.Wait()
	bb.Wait()

	slices.Sort(people.ttft)
	if len(people.ttft) == 0 {
		t.Fatal("no interactive stream got a first event")
	}
	p50, p99 := people.ttft[len(people.ttft)/2], people.ttft[len(people.ttft)*99/100]
	people.name = fmt.Sprintf("5 interactive clients chatting meanwhile: TTFT p50 %s, p99 %s", p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	record(t, batch)
	record(t, people)
	// First in line, a person waits at most for one of the 4 places to
	// free: ≤ 350 ms, the time of one request; in turn behind the batch
	// clients, ~25/4 of them.
	if p99 > time.Second {
		t.Errorf("interactive TTFT p99 %s (p50 %s), want ≤ 1s: people waited behind batch work", p99, p50)
	}
	if batch.completed.Load() == 0 {
		t.Error("no batch request completed")
	}
}

// modelStatus is one model's line of the daemon's status.
func modelStatus(t *testing.T, d *daemon, name string) status.ModelStatus {
	t.Helper()
	for _, m := range d.status().Models {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no model %s in the status", name)
	return status.ModelStatus{}
}

// servedOK is how many requests for model the gateway answered with 200,
// by its gantry_requests_total counters (read with the admin key).
func servedOK(t *testing.T, d *daemon, model string) int {
	t.Helper()
	code, _, body := keyed(t, "GET", d.url+"/metrics", "sk-ops-e2e", "")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "gantry_requests_total{") && strings.Contains(line, `model="`+model+`"`) && strings.Contains(line, `code="200"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += int(v)
		}
	}
	return n
}

package e2e

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestFaultBatchAndInteractive: 50 clients with a batch key hammer two
// models on one slot (half each) while 5 people with an interactive key
// chat with one of them. Interactive requests take the model's free
// places (max_concurrency) first and a batch request never switches the
// slot away from the model they use: their time to first token stays
// low, and nobody's request is lost. Both rows go to RELIABILITY.md, the
// interactive one with its TTFT p99.
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
  chat: {engine: sim, memory: 4GiB, slot: s, max_concurrency: 4, queue_limit: 512, args: [--itl, 3ms, --tokens, "8", --load-time, 300ms]}
  bulk: {engine: sim, memory: 4GiB, slot: s, max_concurrency: 4, queue_limit: 512, args: [--itl, 3ms, --tokens, "8", --load-time, 300ms]}
`)
	batch := newTally("50 batch clients on two models of one slot, while 5 interactive chat")
	batch.key = "sk-agents-e2e"
	people := newTally("5 interactive clients chatting meanwhile")
	people.key = "sk-people-e2e"
	stopBatch, stopPeople := make(chan struct{}), make(chan struct{})
	var k atomic.Int64
	bw := batch.load(d.url, 50, true, func() string {
		if k.Add(1)%2 == 0 {
			return "chat"
		}
		return "bulk"
	}, stopBatch)
	pw := people.load(d.url, 5, true, func() string { return "chat" }, stopPeople)
	time.Sleep(map[bool]time.Duration{true: 5 * time.Second, false: 20 * time.Second}[testing.Short()])
	close(stopPeople)
	pw.Wait()
	// The people gone, the batch clients have the slot to themselves: its
	// requests for bulk, waiting all along, are served.
	time.Sleep(5 * time.Second)
	close(stopBatch)
	bw.Wait()
	slices.Sort(people.ttft)
	if len(people.ttft) == 0 {
		t.Fatal("no interactive stream got a first event")
	}
	p50, p99 := people.ttft[len(people.ttft)/2], people.ttft[len(people.ttft)*99/100]
	people.name = fmt.Sprintf("5 interactive clients chatting meanwhile: TTFT p50 %s, p99 %s", p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	record(t, batch)
	record(t, people)
	if p99 > 3*time.Second {
		t.Errorf("interactive TTFT p99 %s: batch work got ahead of people", p99)
	}
	if batch.completed.Load() == 0 {
		t.Error("no batch request completed")
	}
}

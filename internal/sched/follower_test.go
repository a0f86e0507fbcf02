package sched

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/status"
)

// A rank ≥ 1 of a model across nodes starts only on its leader's word,
// reserves memory here, serves nothing and never idles out.
func TestAFollowerRankStartsOnlyForItsLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := newTestSched(t, `peers: {a: {url: "http://10.0.0.1:4000"}}
models:
  duo: {engine: sim, memory: 30GiB, idle_timeout: 1m, mode: always-on, nodes: [a, local], dist_init_addr: "10.0.0.1:29500"}
`, 100<<30)
		s.Boot(context.Background())
		synctest.Wait()
		r["duo"].wantState(t, status.Stopped) // always-on is the leader's to say
		if _, err := s.Acquire(context.Background(), "duo"); err == nil || !strings.Contains(err.Error(), "peer a leads") {
			t.Errorf("acquire: %v", err)
		}
		if err := s.Start(context.Background(), "duo"); err == nil || !strings.Contains(err.Error(), "peer a leads") {
			t.Errorf("start: %v", err)
		}
		if err := s.BeginRank("duo"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Second) // the fake engine's load
		synctest.Wait()
		r["duo"].wantState(t, status.Ready)
		if st := s.Status(); st.Memory.ReservedBytes != 30<<30 || st.Model("duo").Rank != 1 {
			t.Errorf("reserved %d, rank %d", st.Memory.ReservedBytes, st.Model("duo").Rank)
		}
		if l := s.TryAcquire("duo"); l != nil {
			t.Error("a ready follower rank was leased")
		}
		time.Sleep(5 * time.Minute) // far past idle_timeout
		synctest.Wait()
		r["duo"].wantState(t, status.Ready)
	})
}

func TestBeginRankRefusesAModelThisBoxLeads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestSched(t, "models:\n  a: {engine: sim, memory: 1GiB}\n", 100<<30)
		if err := s.BeginRank("a"); err == nil {
			t.Error("a model on one box started as a rank")
		}
	})
}

package fit

import (
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
)

// Box is a machine a model could run on, with what it holds now.
type Box struct {
	// Name is "this box" or the peer's name.
	Name string
	Plan plan.Box
	// Reserved is what running models hold now; Holders are they.
	Reserved int64
	Holders  []sched.Holder
	// Live says the figures come from a running gantry (else from this
	// machine's facts alone: nothing reserved).
	Live bool
	// Err says why a peer could not be asked (then it gets no verdicts).
	Err string
}

// ThisBox is the box from its own facts when no gantry runs here.
func ThisBox(b plan.Box) Box { return Box{Name: "this box", Plan: b} }

// FromStatus is a box as its gantry's /api/status describes it: the
// budget, the GPU facts, and each model's reservation (idle on-demand
// models may be evicted, least recently used first, as the scheduler
// does).
func FromStatus(name string, st status.Status) Box {
	b := Box{Name: name, Live: true, Reserved: st.Memory.ReservedBytes,
		Plan: plan.Box{Facts: st.GPU, Total: st.Memory.TotalBytes, Budget: st.Memory.BudgetBytes}}
	for _, m := range st.Models {
		if m.MemoryBytes <= 0 {
			continue
		}
		h := sched.Holder{Name: m.Name, Bytes: m.MemoryBytes}
		if m.LastUsed != nil {
			h.LastUsed = *m.LastUsed
		}
		switch m.State {
		case status.Stopping:
			h.Stopping = true
		case status.Ready:
			h.Evictable = !m.AlwaysOn && m.Inflight == 0 && m.Queued == 0 && m.Rank == 0
		case status.Starting:
		default:
			continue // holds nothing
		}
		b.Holders = append(b.Holders, h)
	}
	return b
}

// free is what the budget has left now.
func (b Box) free() int64 { return b.Plan.Budget - b.Reserved }

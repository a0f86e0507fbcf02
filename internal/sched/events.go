package sched

import (
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/diagnose"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/progress"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// onProcEvent follows the engines' state changes; it runs without any lock
// of the process held.
func (s *Scheduler) onProcEvent(ev supervise.Event) {
	s.mu.Lock()
	e := s.models[ev.Model]
	if e != nil {
		if ev.To == status.Starting {
			e.diagnosis = ""
		}
		// Events of one engine come from several goroutines and may arrive
		// out of order: take the engine's state now, not the event's.
		prev := e.state
		e.state = e.proc.State()
		e.reason = ev.Reason
		switch e.state {
		case status.Ready:
			if prev != status.Ready {
				e.readyAt = time.Now()
			}
			if mm, ok := e.proc.(MemoryMeasurer); ok {
				if n := mm.MeasuredMemory(); n > 0 && int64(e.m.Memory) == 0 {
					e.memory, e.memorySource = n, "measured: the engine reports "+config.FormatBytes(n)
				}
			}
			e.armIdleLocked(s)
		case status.Starting:
			e.holds = true // always-on restarts reserve again
		case status.Stopped:
			e.holds, e.evicting = false, false
			e.stopIdleLocked()
		case status.Failed:
			e.failedAt = ev.Time
			if !e.alwaysOn {
				e.holds = false
			}
			e.stopIdleLocked()
		}
		s.broadcastLocked()
	}
	s.mu.Unlock()
	// The state is taken first (a request must not be sent to an engine
	// known to be gone); the diagnosis, which reads the log, after.
	diag := ""
	if e != nil && (ev.To == status.Failed || ev.To == status.Ready) {
		diag = s.diagnose(e, ev)
		s.mu.Lock()
		e.diagnosis = diag
		s.mu.Unlock()
	}
	ev2 := status.Event{Kind: status.KindState, Model: ev.Model, From: string(ev.From), To: string(ev.To), Reason: ev.Reason, Time: ev.Time, Diagnosis: diag}
	if ev.To == status.Ready && e != nil {
		if st := e.proc.Status(); !st.StartedAt.IsZero() && !st.ReadyAt.IsZero() && !st.Adopted {
			ev2.LoadSeconds = st.ReadyAt.Sub(st.StartedAt).Seconds()
			s.rememberLoad(ev.Model, ev2.LoadSeconds)
			if ev.From != status.Ready {
				go s.afterLoad(ev.Model) // mincore and fadvise over the checkpoint: off the event path
			}
		}
	}
	s.emit(ev2)
}

// rememberLoad keeps how long a model's load took, for the next load's
// estimate, across restarts.
func (s *Scheduler) rememberLoad(model string, seconds float64) {
	s.mu.Lock()
	if s.loads == nil {
		s.loads = map[string]float64{}
	}
	s.loads[model] = seconds
	saved := s.persistedLocked()
	s.mu.Unlock()
	s.save(saved)
}

// onProgress turns an engine's load step into a progress event.
func (s *Scheduler) onProgress(model string, step progress.Step) {
	s.mu.Lock()
	e := s.models[model]
	var pr *status.Progress
	if e != nil {
		pr = s.progressLocked(model, step, e.proc.Status().StartedAt, time.Now())
	}
	s.mu.Unlock()
	if pr != nil {
		s.emit(status.Event{Kind: status.KindProgress, Model: model, Progress: pr})
	}
}

// progressLocked is a load's progress for status and events: the step and
// an estimate of the whole from the model's last load.
func (s *Scheduler) progressLocked(model string, step progress.Step, began, now time.Time) *status.Progress {
	if began.IsZero() {
		return nil
	}
	elapsed := now.Sub(began)
	last := time.Duration(s.loads[model] * float64(time.Second))
	pct, eta := progress.Estimate(elapsed, last)
	return &status.Progress{Phase: step.Phase, Fraction: step.Fraction, Done: step.Done, Total: step.Total,
		ElapsedSeconds: elapsed.Seconds(), LastLoadSeconds: last.Seconds(), Percent: pct, ETASeconds: eta}
}

// diagnose reads the engine's log (and the failure reason) for known
// failure signatures. On a failure it asks nvidia-smi who holds GPU memory,
// so the diagnosis can name the PIDs.
func (s *Scheduler) diagnose(e *entry, ev supervise.Event) string {
	var lines []string
	if lg := e.proc.Log(); lg != nil {
		lines = lg.Tail(300)
	}
	lines = append(lines, ev.Reason)
	c := diagnose.Context{Port: e.m.Port, Engine: e.m.Engine, Unified: s.unified(),
		Signatures: engine.Signatures(), Progress: engine.LoadProgress()}
	if e.plan.Info != nil {
		c.Quant = e.plan.Info.Quant.Method
	}
	if ev.To == status.Failed && s.procs != nil {
		c.Procs = s.procs()
	}
	return diagnose.Summary(diagnose.Scan(lines, c))
}

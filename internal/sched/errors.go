package sched

import (
	"github.com/gantryhq/gantry/internal/apierr"
)

// Errors of Acquire, Start, Switch and SetProfile, wrapped with detail.
// Each carries its apierr kind: the gateway and the admin API answer them
// through apierr.Map, the one mapping to HTTP.
var (
	ErrUnknownModel       = apierr.New(apierr.UnknownModel, "unknown model")
	ErrUnknownSlot        = apierr.New(apierr.UnknownSlot, "unknown slot")
	ErrUnknownProfile     = apierr.New(apierr.UnknownProfile, "unknown profile")
	ErrNotSlotMember      = apierr.New(apierr.NotSlotMember, "not a member of the slot")
	ErrInsufficientMemory = apierr.New(apierr.InsufficientMemory, "insufficient memory")
	ErrQueueFull          = apierr.New(apierr.QueueFull, "too many requests waiting")
	ErrSlotSwitching      = apierr.New(apierr.SlotSwitching, "slot is switching")
	ErrStartFailed        = apierr.New(apierr.StartFailed, "model failed to start")
	ErrClosed             = apierr.New(apierr.Closed, "gantry is shutting down")
)

package cli

import (
	"testing"

	"github.com/gantryhq/gantry/internal/lazyre"
)

// TestEveryPatternCompiles: the patterns gantry's packages compile on
// first use (engine signatures and milestones, diagnose, the Hub, config)
// all compile — what regexp.MustCompile at start made sure of before.
// This package links every one of them.
func TestEveryPatternCompiles(t *testing.T) {
	if err := lazyre.CompileAll(); err != nil {
		t.Fatal(err)
	}
}

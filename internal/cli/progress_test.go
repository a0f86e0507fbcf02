package cli

import "testing"

func TestProgressBar(t *testing.T) {
	if got := progressBar(45, 10); got != "[####......] " {
		t.Errorf("bar %q", got)
	}
	if got := progressBar(-1, 10); got != "" {
		t.Errorf("unknown bar %q", got)
	}
}

package cli

import (
	"testing"

	"github.com/gantryhq/gantry/internal/status"
)

func TestDescribeProgress(t *testing.T) {
	cases := []struct {
		m    status.ModelStatus
		want string
	}{
		{status.ModelStatus{Phase: "waiting for the port"}, "waiting for the port"},
		{status.ModelStatus{Phase: "launching", Progress: &status.Progress{Phase: "starting", Percent: -1, ETASeconds: -1, ElapsedSeconds: 1.2}},
			"launching · 1s"},
		{status.ModelStatus{Progress: &status.Progress{Phase: "loading weights", Done: 3, Total: 4, Percent: -1, ETASeconds: -1, ElapsedSeconds: 18}},
			"loading weights 3/4 · 18s"},
		{status.ModelStatus{Progress: &status.Progress{Phase: "capturing CUDA graphs", Percent: 45, ETASeconds: 22, ElapsedSeconds: 18, LastLoadSeconds: 40}},
			"capturing CUDA graphs · 45% · 18s, about 22s left (last load 40s)"},
	}
	for _, c := range cases {
		if got := describeProgress(c.m); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	if got := progressBar(45, 10); got != "[####......] " {
		t.Errorf("bar %q", got)
	}
	if got := progressBar(-1, 10); got != "" {
		t.Errorf("unknown bar %q", got)
	}
}

package status

import "testing"

func TestLoadText(t *testing.T) {
	cases := []struct {
		m    ModelStatus
		want string
	}{
		{ModelStatus{Phase: "waiting for the port"}, "waiting for the port"},
		{ModelStatus{Phase: "launching", Progress: &Progress{Phase: "starting", Percent: -1, ETASeconds: -1, ElapsedSeconds: 1.2}},
			"launching · 1s"},
		{ModelStatus{Progress: &Progress{Phase: "loading weights", Done: 3, Total: 4, Percent: -1, ETASeconds: -1, ElapsedSeconds: 18}},
			"loading weights 3/4 · 18s"},
		{ModelStatus{Progress: &Progress{Phase: "capturing CUDA graphs", Percent: 45, ETASeconds: 22, ElapsedSeconds: 18, LastLoadSeconds: 40}},
			"capturing CUDA graphs · 45% · 18s, about 22s left (last load 40s)"},
	}
	for _, c := range cases {
		if got := c.m.LoadText(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

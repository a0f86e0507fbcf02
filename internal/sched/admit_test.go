package sched

import (
	"slices"
	"testing"
	"time"
)

func TestChooseVictims(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	cases := []struct {
		name       string
		need, free int64
		holders    []Holder
		want       []string
		ok         bool
	}{
		{"fits already", 4, 10, []Holder{{Name: "a", Bytes: 8, Evictable: true}}, nil, true},
		{"least recently used first", 10, 2, []Holder{
			{Name: "new", Bytes: 8, LastUsed: at(30), Evictable: true},
			{Name: "old", Bytes: 8, LastUsed: at(10), Evictable: true},
			{Name: "mid", Bytes: 8, LastUsed: at(20), Evictable: true},
		}, []string{"old"}, true},
		{"only as many as needed", 15, 0, []Holder{
			{Name: "a", Bytes: 8, LastUsed: at(1), Evictable: true},
			{Name: "b", Bytes: 8, LastUsed: at(2), Evictable: true},
			{Name: "c", Bytes: 8, LastUsed: at(3), Evictable: true},
		}, []string{"a", "b"}, true},
		{"stopping memory counts first", 10, 2, []Holder{
			{Name: "going", Bytes: 8, Stopping: true},
			{Name: "idle", Bytes: 8, LastUsed: at(1), Evictable: true},
		}, nil, true},
		{"busy and always-on are never chosen", 10, 0, []Holder{
			{Name: "busy", Bytes: 20, LastUsed: at(1)},
			{Name: "idle", Bytes: 4, LastUsed: at(2), Evictable: true},
		}, nil, false},
		{"not even all of them", 30, 5, []Holder{
			{Name: "a", Bytes: 8, Evictable: true},
			{Name: "b", Bytes: 8, Evictable: true},
		}, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := ChooseVictims(c.need, c.free, c.holders)
			if ok != c.ok || !slices.Equal(got, c.want) {
				t.Errorf("got %v %v, want %v %v", got, ok, c.want, c.ok)
			}
		})
	}
}

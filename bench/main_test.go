package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRotatedPutsEachWayInEachPlace(t *testing.T) {
	var seen [nWays][nWays]int // way, place
	for i := 0; i < nWays; i++ {
		order := rotated(i)
		var in [nWays]bool
		for place, way := range order {
			if in[way] {
				t.Fatalf("round %d runs way %d twice: %v", i, way, order)
			}
			in[way] = true
			seen[way][place]++
		}
	}
	for way, places := range seen {
		for place, n := range places {
			if n != 1 {
				t.Errorf("way %d is in place %d %d times in %d rounds, want once", way, place, n, nWays)
			}
		}
	}
}

func TestMedianAndPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3 1 2 = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 4 1 3 2 = %v", m)
	}
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond // descending: pct must sort
	}
	if p := pct(ds, 50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := pct(ds, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("pct sorted its argument in place")
	}
}

func TestSentAt(t *testing.T) {
	ns, ok := sentAt([]byte(`data: {"id":"x","sim_unix_ns":1764400000123456789,"choices":[]}`))
	if !ok || ns != 1764400000123456789 {
		t.Errorf("stamp = %d, %v", ns, ok)
	}
	if _, ok := sentAt([]byte(`data: {"id":"x"}`)); ok {
		t.Error("a line without a stamp gave one")
	}
}

func TestBenchLine(t *testing.T) {
	m := benchLine.FindStringSubmatch("BenchmarkScan-2   \t      24\t  47880946 ns/op\t        23.65 peak-RSS-MB\t20367406 B/op\t  260808 allocs/op")
	if m == nil || m[1] != "47880946" || m[2] != "23.65" || m[3] != "20367406" || m[4] != "260808" {
		t.Errorf("parsed %q", m)
	}
}

func TestCPUTime(t *testing.T) {
	if cpuTime(0) != 0 {
		t.Error("pid 0 has CPU time")
	}
	before := cpuTime(os.Getpid())
	// Burn CPU until the kernel's 10 ms ticks show it, within a bound.
	x := 0
	for deadline := time.Now().Add(10 * time.Second); cpuTime(os.Getpid()) < before+20*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning did not raise the CPU time from %v (now %v)", before, cpuTime(os.Getpid()))
		}
		for i := 0; i < 1e6; i++ {
			x += i
		}
	}
	_ = x
}

// TestWriteReport: a run rewrites the sections it recorded in place,
// inserts a new one in its order before the history, and leaves the
// others and the hand-written text as they were.
func TestWriteReport(t *testing.T) {
	saved, savedOut := sections, out
	defer func() { sections, out = saved, savedOut }()
	sections = map[string]section{
		"a": {id: "a", title: "A", order: 1},
		"b": {id: "b", title: "B", order: 2, about: "how b is measured"},
		"c": {id: "c", title: "C", order: 3},
	}
	path := t.TempDir() + "/B.md"
	old := "# head\n\n" + startMarker("a") + "\nold a\n" + endMarker("a") + "\n\n" + startMarker("c") + "\nold c\n" + endMarker("c") +
		"\n\n" + startMarker("history") + "\nhistory\n" + endMarker("history") + "\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	out = map[string]*written{
		"a": {rows: []result{{"x", "1 ms", "≤ 2 ms", yes(true)}}},
		"b": {rows: []result{{"y", "3", "", nil}}, notes: []string{"a note"}},
	}
	if err := writeReport(path, "go run ./bench", "0.10"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"# head\n\n<!-- bench:a -->\n## A\n", "| x | 1 ms | ≤ 2 ms | met |", "how b is measured",
		"| y | 3 |  |  |", "a note", "\nold c\n", "\nhistory\n", "load average 0.10", "`go run ./bench`."} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "old a") {
		t.Errorf("section a kept its old run:\n%s", got)
	}
	a, bb, c, h := strings.Index(got, startMarker("a")), strings.Index(got, startMarker("b")), strings.Index(got, startMarker("c")), strings.Index(got, startMarker("history"))
	if !(a < bb && bb < c && c < h) {
		t.Errorf("sections out of order (a %d, b %d, c %d, history %d):\n%s", a, bb, c, h, got)
	}
}

func TestChosen(t *testing.T) {
	ps, err := chosen("")
	if err != nil || len(ps) != len(phases) {
		t.Fatalf("all: %d phases, %v", len(ps), err)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i-1].order > ps[i].order {
			t.Errorf("%s before %s", ps[i-1].name, ps[i].name)
		}
		if _, ok := sections[ps[i].section]; !ok {
			t.Errorf("phase %s writes section %q, which is not declared", ps[i].name, ps[i].section)
		}
	}
	if _, err := chosen("streams,nope"); err == nil || !strings.Contains(err.Error(), "streams") {
		t.Errorf("an unknown phase: %v", err)
	}
}

// TestRawRelay: the floor relays a keep-alive HTTP exchange byte for byte,
// both ways, and two requests on one connection.
func TestRawRelay(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("got "), b...))
	}))
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go relayConn(c.(*net.TCPConn), strings.TrimPrefix(up.URL, "http://"))
		}
	}()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for _, body := range []string{"one", "two"} {
		r, err := c.Post("http://"+ln.Addr().String(), "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if string(b) != "got "+body {
			t.Errorf("relayed %q, want %q", b, "got "+body)
		}
	}
}

func TestMaxLoad(t *testing.T) {
	for _, c := range [][3]string{{"1.50", "10.20", "10.20"}, {"3.00", "2.99", "3.00"}, {"unknown", "0.10", "0.10"}, {"0.10", "unknown", "0.10"}} {
		if got := maxLoad(c[0], c[1]); got != c[2] {
			t.Errorf("maxLoad(%s, %s) = %s", c[0], c[1], got)
		}
	}
}

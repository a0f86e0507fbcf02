package main

import (
	"fmt"
	"slices"
	"strings"
)

// A phase measures one thing and records its rows into one section of
// BENCHMARKS.md. Each phase lives in a file of its own and registers
// itself from an init function, so adding one touches no other file:
//
//	func init() {
//		register(phase{name: "hub", section: "hub", order: 900, run: hubDownloads})
//		addSection(section{id: "hub", title: "Hub downloads", about: "What is measured, and how."})
//	}
//
//	func hubDownloads(e *env) error {
//		…
//		record("download: MB/s, gantry / curl", fmt.Sprintf(…), "≥ 0.9× curl", yes(ok))
//		return nil
//	}
//
// `go run ./bench` runs every phase in order and rewrites the sections
// they recorded into; a phase whose needs this machine does not meet
// (Docker for the container phase) is left out, and its section keeps its
// last run, stamped with that run's commit and machine. `-only a,b` runs
// the named phases and rewrites their sections only.
type phase struct {
	name    string // what -only takes
	section string // the section its rows go to (phases may share one)
	order   int    // its place in a full run: lower first
	// needs, when set, says why this machine cannot run the phase now (nil:
	// it can). A full run leaves such a phase out; -only fails with it.
	needs func(e *env) error
	run   func(e *env) error
}

// A section is one generated block of BENCHMARKS.md: its heading, what it
// measures, the stamp of the run that wrote it, the rows, and notes the
// phases add below the table (a profile's top functions).
type section struct {
	id, title string
	// about says what is measured and how: method, never a figure (the
	// figures are the rows, from the run).
	about string
	order int // its place in a new BENCHMARKS.md: lower first
}

var (
	phases   []phase
	sections = map[string]section{}
)

// register adds a phase to the bench.
func register(p phase) {
	if slices.ContainsFunc(phases, func(q phase) bool { return q.name == p.name }) {
		panic("bench: two phases named " + p.name)
	}
	phases = append(phases, p)
}

// addSection declares a section of BENCHMARKS.md.
func addSection(s section) {
	if _, dup := sections[s.id]; dup {
		panic("bench: two sections " + s.id)
	}
	sections[s.id] = s
}

// result is one row of a section's table.
type result struct {
	name, value, target string
	met                 *bool
}

// written is what this run recorded, by section.
type written struct {
	rows  []result
	notes []string
}

var (
	out     = map[string]*written{}
	current string // the section of the phase that runs
)

// record adds a row to the running phase's section and prints it; met
// is nil for a row without a target.
func record(name, value, target string, met *bool) {
	w := section0()
	w.rows = append(w.rows, result{name, value, target, met})
	mark := ""
	if met != nil {
		mark = map[bool]string{true: "met", false: "NOT met"}[*met]
	}
	fmt.Printf("%-64s %-48s %s %s\n", name, value, target, mark)
}

// note adds text below the running phase's table (Markdown).
func note(text string) {
	w := section0()
	w.notes = append(w.notes, strings.TrimSpace(text))
}

func section0() *written {
	w := out[current]
	if w == nil {
		w = &written{}
		out[current] = w
	}
	return w
}

func yes(b bool) *bool { return &b }

// chosen is the phases a run takes, in order: those -only names (an
// unknown name is an error), or all.
func chosen(only string) ([]phase, error) {
	ps := slices.Clone(phases)
	slices.SortStableFunc(ps, func(a, b phase) int { return a.order - b.order })
	if only == "" {
		return ps, nil
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.name)
	}
	var sel []phase
	for _, n := range strings.Split(only, ",") {
		i := slices.Index(names, strings.TrimSpace(n))
		if i < 0 {
			return nil, fmt.Errorf("-only %s: no such phase; the phases are %s", n, strings.Join(names, ", "))
		}
		sel = append(sel, ps[i])
	}
	return sel, nil
}

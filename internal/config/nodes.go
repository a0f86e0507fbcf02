package config

import (
	"slices"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/engine"
)

// MultiNode reports whether the model spans several boxes.
func (m *Model) MultiNode() bool { return len(m.Nodes) > 1 }

// Rank is this box's rank in the model's group (its place in nodes); 0
// for a model on one box.
func (m *Model) Rank() int { return max(slices.Index(m.Nodes, Local), 0) }

// Leads reports whether this box leads the model: it is on one box, or
// this box is its rank 0.
func (m *Model) Leads() bool { return m.Rank() == 0 }

// Follower reports whether this box runs a rank ≥ 1 of a group another
// box leads: the leader starts and stops it, and requests go there.
func (m *Model) Follower() bool { return m.MultiNode() && m.Rank() > 0 }

// Leader is the peer that leads the model's group ("" when this box does).
func (m *Model) Leader() string {
	if !m.Follower() {
		return ""
	}
	return m.Nodes[0]
}

// spanEngines are the engines whose own multi-node launch gantry drives.
func spanEngines() []string {
	var out []string
	for _, d := range engine.All() {
		if d.SpansNodes {
			out = append(out, d.Name)
		}
	}
	return out
}

// nodes checks a model's nodes: and dist_init_addr.
func (v *validator) nodes(name string, m *Model, p []string) {
	at := func(k string) []string { return append(append([]string(nil), p...), k) }
	if len(m.Nodes) == 0 {
		if m.DistInitAddr != "" {
			v.add(at("dist_init_addr"), "is only for a model with nodes: (one model across several boxes)")
		}
		return
	}
	if len(m.Nodes) == 1 {
		v.add(at("nodes"), "one node is no group: list two or more (local and peers), or drop nodes:")
		return
	}
	seen := map[string]bool{}
	for i, n := range m.Nodes {
		switch _, peer := v.c.Peers[n]; {
		case seen[n]:
			v.add(at("nodes"), "%q is listed twice", n)
		case n != Local && !peer:
			v.add(append(at("nodes"), strconv.Itoa(i)), "%q is neither %q nor a peer (%s)", n, Local, peerList(v.c))
		}
		seen[n] = true
	}
	if !seen[Local] {
		v.add(at("nodes"), "list %q (this box) among the nodes: each box's config names its own place in the group", Local)
	}
	if span := spanEngines(); !slices.Contains(span, m.Engine) {
		v.add(at("nodes"), "engine %s cannot span nodes; %s can (on their own multi-node launch)", m.Engine, strings.Join(span, ", "))
	}
	if m.Runtime == RuntimeDocker {
		v.add(at("runtime"), "a model across nodes runs natively: gantry's containers publish on 127.0.0.1 only, where the other nodes' ranks cannot reach them (set runtime: native)")
	}
	if m.Slot != "" {
		v.add(at("slot"), "a model across nodes cannot share a slot")
	}
	if _, port, err := splitHostPort(m.DistInitAddr); m.DistInitAddr == "" {
		v.add(at("dist_init_addr"), "a model across nodes needs rank 0's host:port as the other nodes reach it, e.g. 10.0.0.1:29500")
	} else if err != nil || port <= 0 || strings.HasPrefix(m.DistInitAddr, ":") {
		v.add(at("dist_init_addr"), "%q is not host:port", m.DistInitAddr)
	}
	if m.Follower() && m.Mode == ModeAlwaysOn {
		v.warn(at("mode"), "rank %d follows %s: the leader decides when the group runs", m.Rank(), m.Leader())
	}
}

package api

import (
	"fmt"
	"net/http"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/group"
)

// RankRequest is what a leader sends to start this box's rank of a model
// across nodes (POST /api/models/{name}/rank): the group as the leader's
// config has it, checked against this box's.
type RankRequest struct {
	NNodes       int    `json:"nnodes"`
	DistInitAddr string `json:"dist_init_addr"`
	// Commit and Image are what the leader runs (group.Identity); this
	// box must run the same.
	Commit string `json:"commit"`
	Image  string `json:"image"`
}

// startRank answers POST /api/models/{name}/rank: this box's rank ≥ 1 of
// a model across nodes starts (memory on this box's budget) and the answer
// comes once the start is under way (202), not when it is loaded — the
// load needs every rank, rank 0 included.
func (s *Server) startRank(w http.ResponseWriter, r *http.Request) {
	var req RankRequest
	if !readJSON(w, r, &req) {
		return
	}
	p, err := s.sched.Process(r.PathValue("name"))
	if err != nil {
		apierr.WriteErr(w, err)
		return
	}
	m := p.Model()
	switch {
	case !m.Follower():
		apierr.Write(w, http.StatusConflict, "invalid_request_error", "not_a_rank",
			fmt.Sprintf("%s is not a rank ≥ 1 here: this box's config does not list it with nodes: led by another box", m.Name))
		return
	case req.NNodes != len(m.Nodes) || req.DistInitAddr != m.DistInitAddr:
		apierr.Write(w, http.StatusConflict, "invalid_request_error", "group_mismatch",
			fmt.Sprintf("the leader's group of %s (%d nodes, rank 0 at %s) is not this box's (%d nodes, rank 0 at %s): make nodes and dist_init_addr agree on both boxes",
				m.Name, req.NNodes, req.DistInitAddr, len(m.Nodes), m.DistInitAddr))
		return
	}
	if why := group.IdentityOf(r.Context(), s.sched.Config(), m, s.sched.Docker()).Mismatch(group.Identity{Commit: req.Commit, Image: req.Image}); why != "" {
		apierr.Write(w, http.StatusConflict, "invalid_request_error", "group_mismatch",
			fmt.Sprintf("%s cannot start across the boxes: %s — put the same on both (gantry get %s --peers …, or the same image on both)", m.Name, why, m.Path))
		return
	}
	if err := s.sched.BeginRank(m.Name); err != nil {
		apierr.WriteErr(w, err)
		return
	}
	ms, _ := s.modelStatus(m.Name)
	apierr.WriteJSON(w, http.StatusAccepted, ms)
}

// rankStatus answers GET /api/models/{name}/rank: the model's status, for
// the leader's watch over its group.
func (s *Server) rankStatus(w http.ResponseWriter, r *http.Request) {
	p, err := s.sched.Process(r.PathValue("name"))
	if err != nil {
		apierr.WriteErr(w, err)
		return
	}
	ms, _ := s.modelStatus(p.Model().Name)
	apierr.WriteJSON(w, http.StatusOK, ms)
}

package kube

import (
	"net"
	"slices"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/plan"
)

// leaderWorkerSet is a model across nodes: one group of len(nodes:) pods,
// the leader rank 0 and serving the API, each worker a rank ≥ 1 — the
// engine's own multi-node flags, as gantry passes them between two boxes,
// with the leader's address and the worker's rank filled in by
// LeaderWorkerSet ($(LWS_LEADER_ADDRESS), $(LWS_WORKER_INDEX); lws v0.9.0
// docs/examples/sglang/lws.yaml).
func (x *exporter) leaderWorkerSet(m *config.Model, p *plan.Model) (Object, error) {
	_, port, err := net.SplitHostPort(m.DistInitAddr)
	if err != nil {
		port = "20000" // the LWS examples' rendezvous port
	}
	addr := "$(LWS_LEADER_ADDRESS):" + port
	n := len(m.Nodes)
	others := make([]string, n)
	for i := range others {
		others[i] = "rank" + itoa(i)
	}
	leader := *m
	leader.Nodes = slices.Clone(others)
	leader.Nodes[0] = config.Local
	leader.DistInitAddr = addr
	worker := *m
	worker.Nodes = slices.Clone(others)
	worker.Nodes[1] = config.Local
	worker.DistInitAddr = addr

	h := EngineHost(x.c)
	lpod, err := x.podSpec(&leader, p, h, "leader")
	if err != nil {
		return nil, err
	}
	h.NodeRank = "$(LWS_WORKER_INDEX)"
	wpod, err := x.podSpec(&worker, p, h, "worker")
	if err != nil {
		return nil, err
	}
	labels := x.podLabels(m)
	x.note("%s spans %d nodes: a LeaderWorkerSet of groups of %d pods; nodes: %v name boxes, the cluster picks the nodes", m.Name, n, n, m.Nodes)
	return Object{
		"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
		"metadata": x.meta(m, ""),
		"spec": Object{
			"replicas": x.replicas(m),
			"leaderWorkerTemplate": Object{
				"size": n,
				// a rank that dies takes the group with it, as gantry's
				// group runner kills rank 0 when another rank dies
				"restartPolicy":  "RecreateGroupOnPodRestart",
				"leaderTemplate": Object{"metadata": Object{"labels": labels}, "spec": lpod},
				"workerTemplate": Object{"metadata": Object{"labels": labels}, "spec": wpod},
			},
		},
	}, nil
}

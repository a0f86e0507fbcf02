package kube

import (
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
)

// Ports of the endpoint picker (llm-d-router v0.10.0,
// config/charts/routerlib/templates/_deployment.yaml and values.yaml):
// ext-proc gRPC, its gRPC health service, metrics.
const (
	eppExtProcPort = 9002
	eppHealthPort  = 9003
	eppMetricsPort = 9090
)

// baseModelHeader is the header the body-based router sets from the
// body's "model". The last Inference Extension release that documents it
// is v1.5.0, the last that carries the router
// (site-src/guides/serving-multiple-inference-pools-latest.md, and
// pkg/bbr/plugins/basemodelextractor/base_model_to_header.go:
// BaseModelHeader). v1.6.0 — whose InferencePool API the objects use —
// removed the router from the repository (#2959, "Cleanup BBR from
// main"); its README names llm-d/llm-d-inference-payload-processor as the
// router's new home, which has no release yet and sets the same header
// (commit a3af1b069101, pkg/plugins/basemodelextractor/
// base_model_to_header.go: BaseModelHeader).
const baseModelHeader = "X-Gateway-Base-Model-Name"

// selector picks the pods that serve the model's API: all of a
// Deployment's, the leader of a LeaderWorkerSet's group.
func (x *exporter) selector(m *config.Model) Object {
	s := Object{"app.kubernetes.io/name": "gantry-engine", "gantry.model": x.names[m.Name]}
	if m.MultiNode() {
		s["leaderworkerset.sigs.k8s.io/worker-index"] = "0"
	}
	return s
}

// service is the model's ClusterIP Service on the engine's port.
func (x *exporter) service(m *config.Model, port int) Object {
	return Object{
		"apiVersion": "v1", "kind": "Service",
		"metadata": x.meta(m, ""),
		"spec": Object{
			"selector": x.selector(m),
			"ports":    []any{Object{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}},
		},
	}
}

// routing is the Inference Extension's side: the pool of the model's
// pods with its endpoint picker, and the route by model name.
func (x *exporter) routing(m *config.Model, port int) []Object {
	pool := "gantry-" + x.names[m.Name]
	epp := pool + "-epp"
	objs := []Object{
		{
			"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
			"metadata": x.meta(m, ""),
			"spec": Object{
				"selector":    Object{"matchLabels": x.selector(m)},
				"targetPorts": []any{Object{"number": port}},
				"endpointPickerRef": Object{"name": epp, "port": Object{"number": eppExtProcPort},
					// A picker that does not answer should not take the
					// model down with it: the gateway picks a pod then.
					"failureMode": "FailOpen"},
			},
		},
	}
	objs = append(objs, x.endpointPicker(m, pool)...)
	objs = append(objs, x.modelNames(m, pool)...)
	return objs
}

// names are the names clients ask for the model by: its own and its
// aliases.
func names(m *config.Model) []string { return append([]string{m.Name}, m.Aliases...) }

// modelNames route requests by the body's model: the body-based router's
// ConfigMap (base model and its other names), the HTTPRoute on the
// header it sets, and — when a client's name is not the one the engine
// serves — the endpoint picker's rewrite of the body's model.
func (x *exporter) modelNames(m *config.Model, pool string) []Object {
	meta := x.meta(m, "-model-names")
	labels := meta["labels"].(Object)
	// The Inference Extension v1.5.0 router watches this label
	// (pkg/bbr/plugins/basemodelextractor/configmap_reconciler.go:
	// bbrManagedLabel); the llm-d payload processor at a3af1b069101 the
	// other (pkg/plugins/basemodelextractor/configmap_reconciler.go:
	// ippManagedLabel).
	labels["inference.networking.k8s.io/bbr-managed"] = "true"
	labels["inference.llm-d.ai/ipp-managed"] = "true"
	data := Object{"baseModel": m.Name}
	if len(m.Aliases) > 0 {
		data["adapters"] = "- " + strings.Join(m.Aliases, "\n- ") + "\n"
	}
	objs := []Object{
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data},
		{
			"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
			"metadata": x.meta(m, ""),
			"spec": Object{
				"parentRefs": []any{Object{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": x.k.Gateway}},
				"rules": []any{Object{
					"matches": []any{Object{
						"path":    Object{"type": "PathPrefix", "value": "/"},
						"headers": []any{Object{"type": "Exact", "name": baseModelHeader, "value": m.Name}},
					}},
					"backendRefs": []any{Object{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": pool}},
				}},
			},
		},
	}
	served := m.ServedName()
	var matches []any
	for _, n := range names(m) {
		if n != served {
			matches = append(matches, Object{"model": Object{"type": "Exact", "value": n}})
		}
	}
	if len(matches) > 0 {
		objs = append(objs, Object{
			"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite",
			"metadata": x.meta(m, ""),
			"spec": Object{
				"poolRef": Object{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": pool},
				"rules":   []any{Object{"matches": matches, "targets": []any{Object{"modelRewrite": served}}}},
			},
		})
	}
	return objs
}

// endpointPicker is the pool's endpoint picker: its account with read
// access to the pods and the pool, its Deployment and Service
// (llm-d-router v0.10.0, config/charts/routerlib/templates: _rbac.yaml,
// _deployment.yaml, _service.yaml; with no --config-file the picker runs
// its default plugins, pkg/epp/config/loader/defaults.go).
func (x *exporter) endpointPicker(m *config.Model, pool string) []Object {
	meta := func() Object { return x.meta(m, "-epp") }
	name := pool + "-epp"
	labels := Object{"app.kubernetes.io/managed-by": "gantry", "app.kubernetes.io/name": "gantry-epp", "gantry.model": x.names[m.Name]}
	read := []any{"get", "list", "watch"}
	grpc := func(service string) Object {
		return Object{"grpc": Object{"port": eppHealthPort, "service": service}, "periodSeconds": 10}
	}
	return []Object{
		{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta()},
		{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(),
			"rules": []any{
				Object{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": read},
				Object{"apiGroups": []any{"inference.networking.k8s.io"}, "resources": []any{"inferencepools"}, "verbs": read},
				Object{"apiGroups": []any{"llm-d.ai"}, "resources": []any{"inferenceobjectives", "inferencemodelrewrites"}, "verbs": read},
			},
		},
		{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(),
			"subjects": []any{Object{"kind": "ServiceAccount", "name": name, "namespace": x.k.Namespace}},
			"roleRef":  Object{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
		},
		{
			"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(),
			"spec": Object{
				"replicas": 1,
				"selector": Object{"matchLabels": labels},
				"template": Object{"metadata": Object{"labels": labels}, "spec": Object{
					"serviceAccountName": name,
					"containers": []any{Object{
						"name": "epp", "image": x.k.EndpointPicker, "imagePullPolicy": "IfNotPresent",
						"args": []any{"--pool-name", pool, "--pool-namespace", x.k.Namespace,
							"--pool-group", "inference.networking.k8s.io", "--grpc-health-port", strconv.Itoa(eppHealthPort)},
						"ports": []any{
							Object{"name": "grpc", "containerPort": eppExtProcPort},
							Object{"name": "grpc-health", "containerPort": eppHealthPort},
							Object{"name": "metrics", "containerPort": eppMetricsPort},
						},
						"env": []any{Object{"name": "NAMESPACE", "valueFrom": Object{"fieldRef": Object{"fieldPath": "metadata.namespace"}}},
							Object{"name": "POD_NAME", "valueFrom": Object{"fieldRef": Object{"fieldPath": "metadata.name"}}}},
						"livenessProbe":  grpc("inference-extension"),
						"readinessProbe": grpc("inference-extension"),
					}},
				}},
			},
		},
		{
			"apiVersion": "v1", "kind": "Service", "metadata": meta(),
			"spec": Object{
				"selector": labels,
				"ports": []any{
					Object{"name": "grpc-ext-proc", "protocol": "TCP", "port": eppExtProcPort, "appProtocol": "kubernetes.io/h2c"},
					Object{"name": "http-metrics", "protocol": "TCP", "port": eppMetricsPort},
				},
			},
		},
	}
}

package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/hfcache"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/plan"
)

// replicas is 1 for an always-on model; an on-demand one starts at 0,
// since scaling from zero on a request is the cluster's job.
func (x *exporter) replicas(m *config.Model) int {
	if m.AlwaysOn() {
		return 1
	}
	x.noteFor(m.Name, "on-demand models (%s) are exported with 0 replicas: scaling from zero on a request is the cluster's job (an autoscaler such as KEDA, or kubectl scale)")
	return 0
}

// deployment is a model on one node.
func (x *exporter) deployment(m *config.Model, p *plan.Model) (Object, error) {
	h := EngineHost(x.c)
	pod, err := x.podSpec(m, p, h, "engine")
	if err != nil {
		return nil, err
	}
	labels := x.podLabels(m)
	return Object{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": x.meta(m, ""),
		"spec": Object{
			"replicas": x.replicas(m),
			"selector": Object{"matchLabels": labels},
			// One engine holds the GPU's memory: a rolling update would
			// need room for two.
			"strategy": Object{"type": "Recreate"},
			"template": Object{"metadata": Object{"labels": labels}, "spec": pod},
		},
	}, nil
}

// podSpec is the pod of the model's engine (or of one rank of it).
func (x *exporter) podSpec(m *config.Model, p *plan.Model, h launch.Host, name string) (Object, error) {
	box, err := launch.InContainer(m, h, p.Resources())
	if err != nil {
		return nil, err
	}
	ctr, vols, err := x.container(m, box, name)
	if err != nil {
		return nil, err
	}
	grace := int64(m.StopTimeout.D() / time.Second)
	return Object{
		"terminationGracePeriodSeconds": grace,
		// The engine has no business with the API server, and Service
		// variables in its environment could read as its own settings
		// (a Service named vllm gives VLLM_PORT=tcp://…, which vLLM reads).
		"automountServiceAccountToken": false,
		"enableServiceLinks":           false,
		"containers":                   []any{ctr},
		"volumes":                      vols,
	}, nil
}

// container is the engine's container: its image and command, its port,
// GPUs, environment, volumes and probes.
func (x *exporter) container(m *config.Model, box *engine.ContainerSpec, name string) (Object, []any, error) {
	argv, err := x.argv(m, box)
	if err != nil {
		return nil, nil, err
	}
	env, err := x.env(m, box)
	if err != nil {
		return nil, nil, err
	}
	mounts, vols, err := x.volumes(m, box)
	if err != nil {
		return nil, nil, err
	}
	ctr := Object{
		"name":            name,
		"image":           box.Image,
		"imagePullPolicy": "IfNotPresent",
		"ports":           []any{Object{"name": "http", "containerPort": box.Port}},
		"volumeMounts":    mounts,
	}
	if box.EntrypointArgs {
		ctr["args"] = argv // the image's entrypoint is the engine program
	} else {
		ctr["command"] = argv
	}
	if len(env) > 0 {
		ctr["env"] = env
	}
	if n := x.gpus(m, box.GPUs); n > 0 {
		ctr["resources"] = Object{"limits": Object{"nvidia.com/gpu": strconv.Itoa(n)}} // a quantity, as the server writes it back
	}
	if err := x.probes(m, box, ctr); err != nil {
		return nil, nil, err
	}
	return ctr, vols, nil
}

// gpus turns gpus: into a count of nvidia.com/gpu: the device plugin
// hands out whole GPUs by count, not by ID.
func (x *exporter) gpus(m *config.Model, g string) int {
	switch {
	case g == "" || g == "none":
		return 0
	case g == "all":
		x.noteFor(m.Name, "gpus: all (%s) is 1 nvidia.com/gpu, a DGX Spark's one; write gpus: N for more")
		return 1
	}
	if n, err := strconv.Atoi(g); err == nil {
		return n
	}
	ids := strings.Split(g, ",")
	x.note("%s: gpus: %s names devices; Kubernetes assigns %d GPUs by count, not by ID", m.Name, g, len(ids))
	return len(ids)
}

// probes are the engine's readiness rule on Kubernetes: a startup probe
// that allows start_timeout, then readiness and liveness every
// health_interval, health_failures misses in a row failing them — as
// gantry's own supervisor does. A rank that serves no HTTP gets none:
// running is all it says.
func (x *exporter) probes(m *config.Model, box *engine.ContainerSpec, ctr Object) error {
	path, err := launch.ReadyPath(m)
	if err != nil || path == "" {
		return err
	}
	get := Object{"path": path, "port": box.Port}
	every := max(int64(m.HealthInterval.D()/time.Second), 1)
	failures := max(m.HealthFailures, 1)
	const startEvery = 10
	startTries := max((int64(m.StartTimeout.D()/time.Second)+startEvery-1)/startEvery, 1)
	ctr["startupProbe"] = Object{"httpGet": get, "periodSeconds": startEvery, "failureThreshold": startTries, "timeoutSeconds": 5}
	ctr["readinessProbe"] = Object{"httpGet": get, "periodSeconds": every, "failureThreshold": failures, "timeoutSeconds": 5}
	ctr["livenessProbe"] = Object{"httpGet": get, "periodSeconds": every, "failureThreshold": failures, "timeoutSeconds": 5}
	return nil
}

// volumes maps the container's bind mounts onto the cluster: the model
// folder (and an engine's own store) onto the models volume, a snapshot of
// the Hugging Face cache onto the hf_cache volume, the engine's cache onto
// an emptyDir, and /dev/shm onto memory.
func (x *exporter) volumes(m *config.Model, box *engine.ContainerSpec) (mounts, vols []any, err error) {
	trees := []struct {
		name, dir, key string
		v              config.KubeVolume
		used           bool
	}{
		{"models", filepath.Join(x.c.Root, "models"), "models_volume", x.k.ModelsVolume, false},
		{"hf-cache", hfcache.Dir(os.Getenv), "hf_cache", x.k.HFCache, false},
	}
	for i, mt := range box.Mounts {
		mount := Object{"mountPath": mt.Target}
		if mt.ReadOnly {
			mount["readOnly"] = true
		}
		if mt.Source == x.c.CacheDir(m.Engine) {
			mount["name"] = "cache"
			vols = append(vols, Object{"name": "cache", "emptyDir": Object{}})
			x.noteFor(m.Name, "the engines' caches (<root>/cache here; %s) are emptyDirs: they start empty with each pod")
			mounts = append(mounts, mount)
			continue
		}
		found := false
		for j := range trees {
			t := &trees[j]
			if rel, ok := relUnder(t.dir, mt.Source); ok {
				mount["name"] = t.name
				if rel != "." {
					mount["subPath"] = filepath.ToSlash(rel)
				}
				t.used, found = true, true
				break
			}
		}
		if !found {
			if x.k.ModelsVolume.PVC != "" {
				return nil, nil, fmt.Errorf("%s: %s is outside %s, which claim %s holds; move the model under it (path: relative), or use kubernetes.models_volume.host_path",
					m.Name, mt.Source, trees[0].dir, x.k.ModelsVolume.PVC)
			}
			name := "host-" + strconv.Itoa(i)
			mount["name"] = name
			vols = append(vols, Object{"name": name, "hostPath": Object{"path": mt.Source, "type": "Directory"}})
			x.note("%s: %s is outside %s: mounted from the same path on the node", m.Name, mt.Source, trees[0].dir)
		}
		mounts = append(mounts, mount)
	}
	for _, t := range trees {
		switch {
		case !t.used:
		case t.v.PVC != "":
			vols = append(vols, Object{"name": t.name, "persistentVolumeClaim": Object{"claimName": t.v.PVC}})
		default:
			vols = append(vols, Object{"name": t.name, "hostPath": Object{"path": t.v.HostPath, "type": "Directory"}})
		}
	}
	// The engines' NCCL and shared-memory tensors want a large /dev/shm;
	// a pod cannot share the host's IPC namespace as --ipc=host does.
	mounts = append(mounts, Object{"name": "dshm", "mountPath": "/dev/shm"})
	vols = append(vols, Object{"name": "dshm", "emptyDir": Object{"medium": "Memory", "sizeLimit": quantity(int64(x.k.ShmSize))}})
	return mounts, vols, nil
}

// relUnder returns p relative to dir when p is dir or below it.
func relUnder(dir, p string) (string, bool) {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// quantity writes bytes as a Kubernetes quantity (Gi, Mi, Ki or bytes).
func quantity(b int64) string {
	for _, u := range []struct {
		s string
		n int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if b >= u.n && b%u.n == 0 {
			return strconv.FormatInt(b/u.n, 10) + u.s
		}
	}
	return strconv.FormatInt(b, 10)
}

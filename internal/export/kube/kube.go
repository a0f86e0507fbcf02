// Package kube renders a gantry config as Kubernetes objects for `gantry
// export kubernetes`: per model the engine's Deployment (a LeaderWorkerSet
// for a model across nodes) with the image and the command gantry itself
// would run, a Service, and the Gateway API Inference Extension objects
// that route requests to it by the body's model name. gantry does not
// manage the cluster: it writes what it knows, and says what it cannot
// express there.
//
// Versions the objects follow (each cited where it is used):
//   - InferencePool: inference.networking.k8s.io/v1, Gateway API Inference
//     Extension v1.6.0 (api/v1/inferencepool_types.go,
//     site-src/api-types/inferencepool.md);
//   - the endpoint picker and InferenceModelRewrite: llm-d-router v0.10.0,
//     where v1.6.0's README says the picker moved
//     (config/charts/routerlib/templates/_deployment.yaml, _rbac.yaml,
//     _service.yaml; apix/v1alpha2/inferencemodelrewrite_types.go);
//   - routing by the body's model: an HTTPRoute matching the
//     X-Gateway-Base-Model-Name header that the body-based router sets
//     from the body's "model", looked up in ConfigMaps of base model and
//     adapters. Documented last by Inference Extension v1.5.0, the last
//     release that carries the router
//     (site-src/guides/serving-multiple-inference-pools-latest.md and
//     config/manifests/bbr/configmap.yaml); v1.6.0 removed it (#2959) and
//     its README points to llm-d-inference-payload-processor, unreleased,
//     which keeps the header (commit a3af1b069101,
//     pkg/plugins/basemodelextractor);
//   - HTTPRoute: gateway.networking.k8s.io/v1, Gateway API v1.6.3;
//   - LeaderWorkerSet: leaderworkerset.x-k8s.io/v1, lws v0.9.0
//     (docs/examples/sglang/lws.yaml: $(LWS_LEADER_ADDRESS),
//     $(LWS_WORKER_INDEX)).
package kube

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/plan"
)

// Options choose what is exported.
type Options struct {
	// Models are the models to export, all when empty.
	Models []string
	// Namespace overrides kubernetes.namespace.
	Namespace string
	// Plans are the planner's decisions by model (plan.Make on the box
	// the cluster's nodes are); PlanBox makes them from the config.
	Plans map[string]*plan.Model
}

// Object is one Kubernetes object, as YAML maps.
type Object = map[string]any

// File is one manifest: a model's objects (or the namespace's).
type File struct {
	// Name is the file name, e.g. scout.yaml.
	Name    string
	Objects []Object
}

// Result is an export: the manifests, and what gantry could not express.
type Result struct {
	Files []File
	// Notes are the things the config says that the objects do not
	// carry, one sentence each: the header comment and stderr.
	Notes []string
}

// ErrRefused is wrapped by the error of an export that cannot express a
// model; nothing is written then.
var ErrRefused = errors.New("cannot be exported")

// PlanBox is the box the export plans for: a node of node_memory (or
// memory.total), unified as memory.unified says (auto: no). With neither
// size no memory fraction is passed, and the engines use their defaults.
func PlanBox(c *config.Config) plan.Box {
	cc := *c
	cc.Memory.Total = c.Kube().NodeMemory
	if cc.Memory.Total <= 0 {
		return plan.Box{}
	}
	return plan.MakeBox(&cc, gpu.Facts{Unified: cc.Memory.UnifiedOn(false)}, 0)
}

// Export renders the models of c.
func Export(c *config.Config, opt Options) (*Result, error) {
	k := c.Kube()
	if opt.Namespace != "" {
		if !config.DNSLabel(opt.Namespace) {
			return nil, fmt.Errorf("--namespace %q is not a namespace name (lower-case letters, digits and -, at most 63)", opt.Namespace)
		}
		k.Namespace = opt.Namespace
	}
	names := opt.Models
	if len(names) == 0 {
		names = c.ModelNames()
	}
	x := &exporter{c: c, k: k, plans: opt.Plans, names: map[string]string{}}
	var refused []string
	for _, n := range names {
		m := c.Models[n]
		if m == nil {
			return nil, fmt.Errorf("no model %q in the config (models: %s)", n, strings.Join(c.ModelNames(), ", "))
		}
		if err := x.objName(n); err != nil {
			refused = append(refused, err.Error())
			continue
		}
	}
	res := &Result{Files: []File{{Name: "00-namespace.yaml", Objects: []Object{namespace(k.Namespace)}}}}
	for _, n := range names {
		if _, ok := x.names[n]; !ok {
			continue
		}
		objs, err := x.model(c.Models[n])
		if err != nil {
			refused = append(refused, err.Error())
			continue
		}
		res.Files = append(res.Files, File{Name: x.names[n] + ".yaml", Objects: objs})
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w:\n  %s", ErrRefused, strings.Join(refused, "\n  "))
	}
	res.Notes = x.allNotes(c, names)
	return res, nil
}

// exporter holds one export's state.
type exporter struct {
	c     *config.Config
	k     config.Kubernetes
	plans map[string]*plan.Model
	// names maps a model to its Kubernetes name (lower-case, a DNS label).
	names map[string]string
	notes []string
	// shared are notes that several models may share: the sentence (its
	// models at %s) and the models, in the order first seen.
	shared     map[string][]string
	sharedKeys []string
}

// objName gives model n its Kubernetes name: the model's name when it is
// one already, else lower-cased with other characters as "-"; a clash
// with another model's is refused rather than guessed around.
func (x *exporter) objName(n string) error {
	kn := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, n)
	kn = strings.Trim(kn, "-")
	// gantry-<name>-epp is the longest name derived from it.
	if kn == "" || len(kn) > 63-len("gantry--epp") {
		return fmt.Errorf("%s: the name cannot make a Kubernetes name of at most 52 characters; rename the model", n)
	}
	for other, okn := range x.names {
		if okn == kn {
			return fmt.Errorf("%s: its Kubernetes name %q is also %s's; rename one of them", n, kn, other)
		}
	}
	x.names[n] = kn
	return nil
}

// note records something the export does not carry.
func (x *exporter) note(format string, args ...any) {
	x.notes = append(x.notes, fmt.Sprintf(format, args...))
}

// noteFor records a note that other models may share: sentence names
// the models at its %s.
func (x *exporter) noteFor(model, sentence string) {
	if x.shared == nil {
		x.shared = map[string][]string{}
	}
	if _, ok := x.shared[sentence]; !ok {
		x.sharedKeys = append(x.sharedKeys, sentence)
	}
	if !slices.Contains(x.shared[sentence], model) {
		x.shared[sentence] = append(x.shared[sentence], model)
	}
}

// allNotes are the model notes, the shared ones with their models, then
// the config's.
func (x *exporter) allNotes(c *config.Config, names []string) []string {
	out := slices.Clone(x.notes)
	for _, s := range x.sharedKeys {
		out = append(out, fmt.Sprintf(s, strings.Join(x.shared[s], ", ")))
	}
	return append(out, notExpressed(c, names)...)
}

// model renders one model's objects.
func (x *exporter) model(m *config.Model) ([]Object, error) {
	p := x.plans[m.Name]
	if p == nil {
		p = &plan.Model{Name: m.Name}
	}
	if f := p.Blocked(); f != nil && f.Rule != "path-missing" {
		// The box's files decide the estimate; a missing folder here is
		// no reason to refuse a cluster that holds it.
		return nil, fmt.Errorf("%s: %s (%s)", m.Name, f.Reason, f.Fix)
	}
	var workload Object
	var err error
	if m.MultiNode() {
		workload, err = x.leaderWorkerSet(m, p)
	} else {
		workload, err = x.deployment(m, p)
	}
	if err != nil {
		return nil, err
	}
	port := x.port(m)
	objs := []Object{workload, x.service(m, port)}
	objs = append(objs, x.routing(m, port)...)
	return objs, nil
}

// Marshal writes the objects of files as one YAML stream under header.
func Marshal(header string, files ...File) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	for _, f := range files {
		for _, o := range f.Objects {
			b.WriteString("---\n")
			enc := yaml.NewEncoder(&b)
			enc.SetIndent(2)
			if err := enc.Encode(o); err != nil {
				return nil, err
			}
			enc.Close()
		}
	}
	return b.Bytes(), nil
}

// Header is the comment at the top of each manifest: what wrote it, and
// every note.
func Header(r *Result) string {
	var b strings.Builder
	b.WriteString("# Written by `gantry export kubernetes` from the gantry config.\n")
	if len(r.Notes) > 0 {
		b.WriteString("#\n# Not carried over (gantry cannot express these on Kubernetes):\n")
		for _, n := range r.Notes {
			b.WriteString(wrapComment("- "+n, "#   "))
		}
	}
	return b.String()
}

// wrapComment wraps s into comment lines of at most 78 columns.
func wrapComment(s, indent string) string {
	var b strings.Builder
	line := "# "
	for i, w := range strings.Fields(s) {
		if i > 0 && len(line)+1+len(w) > 78 {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = indent
		} else if i > 0 {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
	return b.String()
}

func namespace(ns string) Object {
	return Object{"apiVersion": "v1", "kind": "Namespace", "metadata": Object{"name": ns, "labels": managedLabels()}}
}

// managedLabels mark every object as gantry's.
func managedLabels() Object {
	return Object{"app.kubernetes.io/managed-by": "gantry"}
}

// podLabels select a model's engine pods.
func (x *exporter) podLabels(m *config.Model) Object {
	return Object{"app.kubernetes.io/managed-by": "gantry", "app.kubernetes.io/name": "gantry-engine", "gantry.model": x.names[m.Name]}
}

// meta is an object's metadata: gantry-<model><suffix> in the namespace.
func (x *exporter) meta(m *config.Model, suffix string) Object {
	labels := managedLabels()
	labels["gantry.model"] = x.names[m.Name]
	return Object{"name": "gantry-" + x.names[m.Name] + suffix, "namespace": x.k.Namespace, "labels": labels,
		"annotations": Object{"gantry.dev/model": m.Name}}
}

// port is the engine's port inside its pod.
func (x *exporter) port(m *config.Model) int {
	return m.Port
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// EngineHost is the host facts export builds commands with: the config,
// and gantry as the image's own `gantry` for the simulated engine.
func EngineHost(c *config.Config) launch.Host { return launch.Host{Config: c, Self: "gantry"} }

func itoa(i int) string { return strconv.Itoa(i) }

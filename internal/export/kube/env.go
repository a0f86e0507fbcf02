package kube

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
)

// A value the config writes as ${env.X} reaches the pod from the Secret
// (kubernetes.secret, key X), never inlined: a value that is only the
// reference becomes a secretKeyRef; one with text around it, and any
// argument that names one, refers to an environment variable X taken from
// the Secret, with Kubernetes' own $(X) expansion. An env: value whose
// name says KEY, TOKEN, SECRET or PASSWORD but is written literally is
// taken from the Secret too (key: its name): a manifest is no place for it.

// secretRef is an env entry from the Secret.
func (x *exporter) secretRef(name, key string) Object {
	return Object{"name": name, "valueFrom": Object{"secretKeyRef": Object{"name": x.k.Secret, "key": key}}}
}

// kubeRef is the $(X) form of a reference, recording X.
func kubeRef(used *[]string) func(string) string {
	return func(name string) string {
		if !slices.Contains(*used, name) {
			*used = append(*used, name)
		}
		return "$(" + name + ")"
	}
}

// env is the container's environment.
func (x *exporter) env(m *config.Model, box *engine.ContainerSpec) ([]any, error) {
	var refs []string // variables taken from the Secret for $(X) use
	var out []any
	for _, kv := range box.Env {
		k, v, _ := strings.Cut(kv, "=")
		own, isOwn := m.Env[k]
		tmpl, templated := x.c.EnvTemplate("models", m.Name, "env", k)
		switch {
		case isOwn && own == v && templated:
			if name, whole := wholeRef(tmpl); whole {
				out = append(out, x.secretRef(k, name))
				continue
			}
			out = append(out, Object{"name": k, "value": config.MapEnvTemplate(tmpl, kubeRef(&refs))})
		case isOwn && own == v && config.SecretName(k):
			out = append(out, x.secretRef(k, k))
			x.note("%s: env %s is written literally in the config; the export takes it from Secret %s, key %s", m.Name, k, x.k.Secret, k)
		default:
			out = append(out, Object{"name": k, "value": v})
		}
	}
	argRefs, err := x.argRefs(m)
	if err != nil {
		return nil, err
	}
	for _, r := range argRefs {
		if !slices.Contains(refs, r) {
			refs = append(refs, r)
		}
	}
	// Kubernetes expands $(X) only from variables defined before: the
	// Secret's come first.
	var pre []any
	for _, r := range refs {
		pre = append(pre, x.secretRef(r, r))
	}
	return append(pre, out...), nil
}

// wholeRef reports whether tmpl is exactly one ${env.X}, and X.
func wholeRef(tmpl string) (string, bool) {
	name, ok := strings.CutPrefix(tmpl, "${env.")
	if !ok || !strings.HasSuffix(name, "}") {
		return "", false
	}
	name = strings.TrimSuffix(name, "}")
	return name, !strings.ContainsAny(name, "{}$")
}

// argRefs are the variables the model's args: and command: name.
func (x *exporter) argRefs(m *config.Model) ([]string, error) {
	var used []string
	ref := kubeRef(&used)
	for _, path := range x.c.EnvTemplatePaths("models." + m.Name) {
		key := strings.Split(strings.TrimPrefix(path, "models."+m.Name+"."), ".")
		switch key[0] {
		case "env":
		case "args", "command":
			tmpl, _ := x.c.EnvTemplate(strings.Split(path, ".")...)
			config.MapEnvTemplate(tmpl, ref)
		default:
			return nil, fmt.Errorf("%s: %s names ${env.…}; a manifest can take a Secret's value only in env:, args: and command:; write the value", m.Name, path)
		}
	}
	return used, nil
}

// argv is the container's command with every argument the config wrote
// as ${env.X} turned back into $(X). The model's args: end the command
// and a command engine's command: starts it; anything else that does
// not line up is refused rather than a secret written.
func (x *exporter) argv(m *config.Model, box *engine.ContainerSpec) ([]string, error) {
	argv := slices.Clone(box.Argv)
	var unused []string
	ref := kubeRef(&unused)
	off := len(argv) - len(m.Args)
	for i := range m.Args {
		tmpl, ok := x.c.EnvTemplate("models", m.Name, "args", strconv.Itoa(i))
		if !ok {
			continue
		}
		if off < 0 || argv[off+i] != m.Args[i] {
			return nil, fmt.Errorf("%s: args.%d names ${env.…} but is not where the engine's command ends; write the value", m.Name, i)
		}
		argv[off+i] = config.MapEnvTemplate(tmpl, ref)
	}
	for i := range m.Command {
		tmpl, ok := x.c.EnvTemplate("models", m.Name, "command", strconv.Itoa(i))
		if !ok {
			continue
		}
		if i >= len(argv) || argv[i] != m.Command[i] {
			return nil, fmt.Errorf("%s: command.%d names ${env.…} but the container's command does not start with command:; write the value", m.Name, i)
		}
		argv[i] = config.MapEnvTemplate(tmpl, ref)
	}
	return argv, nil
}

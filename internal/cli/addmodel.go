package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gantryhq/gantry/internal/config"
)

// newModel is a models: entry that get --add (or a recipe) writes.
type newModel struct {
	Name    string
	Comment string // after the name, e.g. where the files came from
	Engine  string
	Path    string
	Runtime string // "" for the engine's default
	Image   string
	Context int64
	Memory  string
	Args    []string
	Env     map[string]string
}

// node is the entry as YAML, keys in the order people write them.
func (m newModel) node() *yaml.Node {
	mp := &yaml.Node{Kind: yaml.MappingNode}
	add := func(k string, v *yaml.Node) {
		mp.Content = append(mp.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, v)
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	add("engine", str(m.Engine))
	if m.Path != "" {
		add("path", str(m.Path))
	}
	if m.Runtime != "" {
		add("runtime", str(m.Runtime))
	}
	if m.Image != "" {
		add("image", str(m.Image))
	}
	if m.Context > 0 {
		add("context", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(m.Context)})
	}
	if m.Memory != "" {
		add("memory", str(m.Memory))
	}
	if len(m.Args) > 0 {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, a := range m.Args {
			seq.Content = append(seq.Content, str(a))
		}
		add("args", seq)
	}
	if len(m.Env) > 0 {
		env := &yaml.Node{Kind: yaml.MappingNode}
		for _, k := range sortedKeys(m.Env) {
			env.Content = append(env.Content, str(k), str(m.Env[k]))
		}
		add("env", env)
	}
	return mp
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// text is the entry at indent: "name:  # comment" and its keys below.
func (m newModel) text(indent int) (string, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(m.node()); err != nil {
		return "", err
	}
	pad := strings.Repeat(" ", indent)
	name, err := yaml.Marshal(m.Name)
	if err != nil {
		return "", err
	}
	out := pad + strings.TrimSpace(string(name)) + ":"
	if m.Comment != "" {
		out += "  # " + m.Comment
	}
	out += "\n"
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		out += pad + "  " + l + "\n"
	}
	return out, nil
}

// addModel writes m into the config file at path: the entry is inserted
// as text at the end of models: (created at the end of the file if
// missing), so every other byte — comments, order, blank lines — stays as
// it was. The new file is validated first, as `config validate` does; a
// config with problems is not saved and the problems are the error.
func addModel(ctx context.Context, path string, m newModel) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no config file at %s: run `gantry init` to write one (or pass --config), then get --add again", path)
	}
	if err != nil {
		return err
	}
	out, err := insertModel(data, m)
	if err != nil {
		return err
	}
	if _, probs, err := validateBytes(ctx, path, out); err != nil {
		return err
	} else if probs.Errors() > 0 {
		var lines []string
		for _, p := range probs {
			if !p.Warning {
				lines = append(lines, "  "+p.String())
			}
		}
		return fmt.Errorf("models.%s was not added to %s — the config would have these problems:\n%s", m.Name, path, strings.Join(lines, "\n"))
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".gantry-tmp")
	if err := os.WriteFile(tmp, out, st.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// insertModel inserts m's entry into a config's text.
func insertModel(data []byte, m newModel) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("the config does not parse (%v): fix it first (gantry config validate)", err)
	}
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	entry, err := m.text(2)
	if err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return []byte(text + "models:\n" + entry), nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, errors.New("the config is not a mapping of keys")
	}
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "models" {
			continue
		}
		key, v := top.Content[i], top.Content[i+1]
		next := len(lines) + 1 // the line of the key after models:, 1-based
		if i+2 < len(top.Content) {
			next = top.Content[i+2].Line
		}
		switch {
		case v.Kind == yaml.MappingNode && v.Style&yaml.FlowStyle == 0:
			for j := 0; j+1 < len(v.Content); j += 2 {
				if v.Content[j].Value == m.Name {
					return nil, fmt.Errorf("models.%s is in the config already (line %d): choose another name with --name", m.Name, v.Content[j].Line)
				}
			}
			entry, _ = m.text(v.Content[0].Column - 1)
			at := lastIndented(lines, key.Line, next)
			return []byte(strings.Join(lines[:at], "") + entry + strings.Join(lines[at:], "")), nil
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null" && v.Line == key.Line && !strings.Contains(lines[key.Line-1][key.Column:], "null") && !strings.Contains(lines[key.Line-1][key.Column:], "~"):
			return []byte(strings.Join(lines[:key.Line], "") + entry + strings.Join(lines[key.Line:], "")), nil
		}
		return nil, fmt.Errorf("models: is not written as an indented block here, so gantry does not edit it; add this yourself:\n%s", entry)
	}
	return []byte(text + "models:\n" + entry), nil
}

// lastIndented is the index (0-based) after the last indented, non-blank
// line between the models: key's line and the next top-level key: the
// end of the block (comments at the left margin before the next key are
// that key's).
func lastIndented(lines []string, from, next int) int {
	at := from
	for l := from + 1; l < next && l <= len(lines); l++ {
		s := lines[l-1]
		if strings.TrimSpace(s) != "" && (s[0] == ' ' || s[0] == '\t') {
			at = l
		}
	}
	return at
}

// validateBytes is validate on a config's text not yet saved.
func validateBytes(ctx context.Context, path string, data []byte) (*config.Config, config.Problems, error) {
	c, probs := config.ParseAll(path, data)
	if c == nil { // not YAML: nothing to plan
		return nil, probs, nil
	}
	decoded := probs.Errors() == 0
	probs = append(probs, planProblems(ctx, c, probs)...)
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	if !decoded {
		c = nil
	}
	return c, probs, nil
}

package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/plan"
)

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// rootTree is the seed's folder layout under ~/ai.
var rootTree = []string{
	"models/llama4", "models/qwen3", "models/deepseek", "models/phi4", "models/embeddings",
	"servers/sglang", "servers/vllm", "servers/tensorrt",
	"configs/sglang", "configs/vllm", "configs/huggingface", "configs/docker", "configs/gantry",
	"scripts/download", "scripts/serve", "scripts/update", "scripts/system",
	"logs/sglang", "logs/vllm", "logs/models",
	"projects/rag", "projects/agents", "projects/pipelines",
	"cache/huggingface", "cache/sglang", "cache/vllm",
}

func runInit(e *env, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	root := fs.String("root", config.DefaultRoot, "the tree to create")
	cfgOut := fs.String("config", "", "where to write the starter config (default <root>/configs/gantry/gantry.yaml)")
	force := fs.Bool("force", false, "overwrite an existing config")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("gantry init takes no arguments (use --root)")
	}
	r := config.ExpandHome(*root)
	for _, d := range rootTree {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	fmt.Fprintf(e.stdout, "created the tree under %s\n", r)
	path := *cfgOut
	if path == "" {
		path = filepath.Join(r, "configs", "gantry", "gantry.yaml")
	}
	if fileExists(path) && !*force {
		fmt.Fprintf(e.stdout, "%s exists; left as it is (--force writes a new one)\n", path)
		return nil
	}
	text, n, err := starterConfig(e.ctx, r)
	if err != nil {
		return err
	}
	if _, err := config.Parse(path, []byte(text)); err != nil {
		return fmt.Errorf("the starter config gantry wrote does not validate (a bug): %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s with %d model(s) found under %s/models; check it with `gantry config validate --config %s`\n", path, n, r, path)
	return nil
}

// starterConfig writes a config for the models found under root/models:
// each on demand, on the seed's engine for its format, with its estimate as
// a comment.
func starterConfig(ctx context.Context, root string) (string, int, error) {
	c := config.Demo()
	c.Root = root
	c.Models = map[string]*config.Model{}
	rows, err := plan.Inventory(c, localBox(ctx, c), nil)
	if err != nil {
		return "", 0, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `gantry init` on %s. Edit freely; `gantry config validate` checks it.\n", time.Now().Format("2006-01-02"))
	fmt.Fprintf(&b, "listen: 127.0.0.1:4000\nroot: %s\nmemory:\n  total: auto\n  reserve: 8GiB\n", yamlQuote(root))
	b.WriteString("defaults:\n  idle_timeout: 15m\n  start_timeout: 15m\n  stop_timeout: 30s\nmodels:\n")
	n := 0
	names := map[string]bool{}
	for _, r := range rows {
		if r.Inventory == nil || len(r.Inventory.Problems) > 0 || r.Inventory.WeightBytes == 0 {
			continue
		}
		name := modelKey(r.Name, names)
		eng := plan.GuessEngine(r.Inventory)
		fmt.Fprintf(&b, "  %s:   # %s, %s weights, estimate %s\n", name, r.Inventory.Quant, config.FormatBytes(r.SizeBytes), config.FormatBytes(r.Estimate))
		fmt.Fprintf(&b, "    engine: %s\n    path: %s\n", eng, yamlQuote(r.Name))
		n++
	}
	if n == 0 {
		b.WriteString("  # No models were found under models/. A simulated one, to try gantry:\n")
		b.WriteString("  demo: {engine: sim, memory: 1GiB, args: [--load-time, 2s, --itl, 20ms]}\n")
	}
	b.WriteString("# slots:\n#   private: {port: 30001}\n# profiles:\n#   hybrid: {always_on: []}\n")
	return b.String(), n, nil
}

func yamlQuote(s string) string { return fmt.Sprintf("%q", s) }

// modelKey turns a path like qwen3/Qwen3-8B into a unique model name.
func modelKey(path string, used map[string]bool) string {
	base := strings.ToLower(filepath.Base(path))
	base = strings.TrimSuffix(base, ".gguf")
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	name := strings.Trim(b.String(), "-.")
	if name == "" {
		name = "model"
	}
	k := name
	for i := 2; used[k]; i++ {
		k = fmt.Sprintf("%s-%d", name, i)
	}
	used[k] = true
	return k
}

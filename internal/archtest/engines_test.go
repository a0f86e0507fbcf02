package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/engine"
)

// goFiles calls fn with every non-test Go file of the module outside
// skip (paths relative to the root, slash-separated), parsed.
func goFiles(t *testing.T, skip []string, fn func(rel string, fset *token.FileSet, f *ast.File)) {
	t.Helper()
	base := root(t)
	fset := token.NewFileSet()
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if n := d.Name(); path != base && (n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || n == "node_modules" || slices.Contains(skip, rel)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		fn(rel, fset, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// engineConsts are the names of package engine's constants whose value
// is an engine's name (engine.VLLM …), read from its source.
func engineConsts(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, n := range engine.Names() {
		names[n] = true
	}
	out := map[string]bool{}
	goFiles(t, nil, func(rel string, _ *token.FileSet, f *ast.File) {
		if !strings.HasPrefix(rel, "internal/engine/") {
			return
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, _ := strconv.Unquote(lit.Value); names[s] {
							out[vs.Names[i].Name] = true
						}
					}
				}
			}
		}
	})
	return out
}

// ordinaryWords are engine names that are also everyday words of the
// code — a config key (command:), a Kubernetes field, a verb (sim): as a
// string literal they mean those far more often, so only their constants
// (engine.Command, engine.Sim) count.
var ordinaryWords = map[string]bool{engine.Command: true, engine.Sim: true}

// notGantry are folders of programs that impersonate the engines rather
// than know them: the container tests' stand-in answers to the engines'
// program names (argv[0]), as their real images do.
var notGantry = []string{"e2e/standin"}

// TestNoEngineSwitchOutsideEngine: an engine's knowledge lives in its
// descriptor (internal/engine/<engine>.go). Outside internal/engine no
// code compares with an engine's name — in a switch case, an if, any ==
// or != — nor keys or indexes a map by one, whether it spells the name as
// a string ("vllm") or as engine's constant (engine.VLLM).
func TestNoEngineSwitchOutsideEngine(t *testing.T) {
	names := map[string]bool{}
	for _, n := range engine.Names() {
		names[n] = !ordinaryWords[n]
	}
	consts := engineConsts(t)
	if len(consts) < len(names) { // every name, ordinary or not
		t.Fatalf("found constants %v for engines %v: every engine's name is a constant in its file", consts, engine.Names())
	}
	// isName reports whether e spells an engine's name, and how.
	isName := func(e ast.Expr) (string, bool) {
		switch x := e.(type) {
		case *ast.BasicLit:
			if s, err := strconv.Unquote(x.Value); err == nil && x.Kind == token.STRING && names[s] {
				return x.Value, true
			}
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && id.Name == "engine" && consts[x.Sel.Name] {
				return "engine." + x.Sel.Name, true
			}
		}
		return "", false
	}
	var bad []string
	base := root(t)
	report := func(fset *token.FileSet, at token.Pos, what, name string) {
		pos := fset.Position(at)
		if rel, err := filepath.Rel(base, pos.Filename); err == nil {
			pos.Filename = filepath.ToSlash(rel)
		}
		bad = append(bad, fmt.Sprintf("%s: %s %s", pos, what, name))
	}
	goFiles(t, append([]string{"internal/engine", "internal/archtest"}, notGantry...), func(rel string, fset *token.FileSet, f *ast.File) {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CaseClause:
				for _, e := range x.List {
					if s, ok := isName(e); ok {
						report(fset, e.Pos(), "a switch case on", s)
					}
				}
			case *ast.BinaryExpr:
				if x.Op != token.EQL && x.Op != token.NEQ {
					break
				}
				for _, e := range []ast.Expr{x.X, x.Y} {
					if s, ok := isName(e); ok {
						report(fset, e.Pos(), "a comparison with", s)
					}
				}
			case *ast.CompositeLit:
				for _, el := range x.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if s, ok := isName(kv.Key); ok {
							report(fset, kv.Key.Pos(), "a map keyed by", s)
						}
					}
				}
			case *ast.IndexExpr:
				if s, ok := isName(x.Index); ok {
					report(fset, x.Index.Pos(), "an index by", s)
				}
			}
			return true
		})
	})
	for _, b := range bad {
		t.Errorf("%s: what an engine does or needs belongs in its descriptor (internal/engine/<engine>.go): "+
			"add a field or function to engine.Descriptor (documented), set it in the engines that need it, and ask "+
			"engine.Lookup(name) here instead of naming the engine", b)
	}
}

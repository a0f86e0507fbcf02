package archtest

import (
	"go/ast"
	"go/token"
	"strings"
	"testing"
)

// TestNoReexportOfStatus: the API's types have one home, internal/status.
// No other package re-exports one under its own name (type X = status.X):
// a second spelling of one type is what issue 26 took away.
func TestNoReexportOfStatus(t *testing.T) {
	goFiles(t, []string{"internal/status"}, func(rel string, fset *token.FileSet, f *ast.File) {
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, spec := range g.Specs {
				ts := spec.(*ast.TypeSpec)
				sel, ok := ts.Type.(*ast.SelectorExpr)
				if !ts.Assign.IsValid() || !ok {
					continue
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "status" {
					t.Errorf("%s: type %s = status.%s: write status.%s where %s is used, and delete the alias",
						strings.TrimPrefix(fset.Position(ts.Pos()).String(), root(t)+"/"), ts.Name.Name, sel.Sel.Name, sel.Sel.Name, ts.Name.Name)
				}
			}
		}
	})
}

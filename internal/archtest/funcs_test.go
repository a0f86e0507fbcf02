package archtest

import (
	"go/ast"
	"go/token"
	"testing"
)

// maxFuncLines is the longest a non-test function may be, its signature
// and closing brace included: one a reader holds in one sitting.
const maxFuncLines = 100

// TestFunctionsFitOnAScreen: no non-test function in the module is longer
// than maxFuncLines. A long function's section comments are where it
// splits: each section becomes a function (config's validator.model is
// the shape).
func TestFunctionsFitOnAScreen(t *testing.T) {
	goFiles(t, nil, func(rel string, fset *token.FileSet, f *ast.File) {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Pos()), fset.Position(fn.End())
			if n := end.Line - start.Line + 1; n > maxFuncLines {
				t.Errorf("%s:%d: %s is %d lines, more than %d: split it along its sections into functions a reader holds at once",
					rel, start.Line, funcName(fn), n, maxFuncLines)
			}
		}
	})
}

// funcName is Recv.Name or Name.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}

package archtest

import (
	"bufio"
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/gantryhq/gantry"

// root is the repository's root, two folders above this package.
func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pkg is one of the module's packages: its name as the map writes it
// (the path without "internal/") and the module's packages its non-test
// files import.
type pkg struct {
	name    string
	imports []string
}

// shortName is how the map names a package: its path in the module
// without the leading "internal/".
func shortName(importPath string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(importPath, module), "/")
	return strings.TrimPrefix(rel, "internal/")
}

// packages reads every package of the module that has non-test Go files
// (for this GOOS/GOARCH, build constraints honoured) and its imports of
// the module's own packages.
func packages(t *testing.T) map[string]pkg {
	t.Helper()
	base := root(t)
	out := map[string]pkg{}
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if n := d.Name(); path != base && (n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || n == "node_modules") {
			return filepath.SkipDir
		}
		bp, err := build.ImportDir(path, 0)
		if err != nil {
			var noGo *build.NoGoError
			if errors.As(err, &noGo) {
				return nil
			}
			return err
		}
		if len(bp.GoFiles)+len(bp.CgoFiles) == 0 {
			return nil // tests only: nothing imports it, its imports are the tests'
		}
		rel, _ := filepath.Rel(base, path)
		p := pkg{name: shortName(module + "/" + filepath.ToSlash(rel))}
		for _, imp := range bp.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				p.imports = append(p.imports, shortName(imp))
			}
		}
		slices.Sort(p.imports)
		out[p.name] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// row is one row of the map's package table.
type row struct {
	line      int
	name      string
	mayImport []string
}

var cellName = regexp.MustCompile("^`([a-z0-9/_-]+)`$")

// table reads the package table under "## Packages" in ARCHITECTURE.md:
// rows of | `path` | its one job | may import |, the path without
// "internal/", may import a comma-separated list of such names or "—".
func table(t *testing.T, path string) []row {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []row
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Packages"
			continue
		case !in || !strings.HasPrefix(line, "|"):
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 3 {
			t.Errorf("%s:%d: a package row has three cells (| `path` | its one job | may import |), this one has %d", path, n, len(cells))
			continue
		}
		if cells[0] == "package" || strings.Trim(cells[0], "-: ") == "" {
			continue // the header and its rule
		}
		m := cellName.FindStringSubmatch(cells[0])
		if m == nil {
			t.Errorf("%s:%d: the first cell names one package in backquotes, its path without \"internal/\" (`sched`, `cmd/gantry`); it says %s", path, n, cells[0])
			continue
		}
		r := row{line: n, name: strings.TrimPrefix(m[1], "internal/")}
		if cells[2] != "—" && cells[2] != "" {
			for _, s := range strings.Split(cells[2], ",") {
				r.mayImport = append(r.mayImport, strings.TrimSpace(s))
			}
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func cell(names []string) string {
	if len(names) == 0 {
		return "—"
	}
	return strings.Join(names, ", ")
}

// TestTheMapsImportsAreTheRealOnes holds docs/ARCHITECTURE.md's package
// table to the code: one row per package, its "may import" cell exactly
// the module's packages its non-test files import, and no package
// importing one whose row is above its own ("lower packages never import
// higher ones").
func TestTheMapsImportsAreTheRealOnes(t *testing.T) {
	doc := filepath.Join(root(t), "docs", "ARCHITECTURE.md")
	rel := "docs/ARCHITECTURE.md"
	pkgs := packages(t)
	rows := table(t, doc)
	pos := map[string]int{}
	for i, r := range rows {
		if _, dup := pos[r.name]; dup {
			t.Errorf("%s:%d: a second row for `%s`: keep one", rel, r.line, r.name)
			continue
		}
		pos[r.name] = i
	}
	for _, r := range rows {
		p, ok := pkgs[r.name]
		if !ok {
			t.Errorf("%s:%d: there is no package %s with non-test Go files: remove its row (or fix the path)", rel, r.line, r.name)
			continue
		}
		want := slices.Sorted(slices.Values(r.mayImport))
		if !slices.Equal(want, p.imports) {
			t.Errorf("%s:%d: `%s` imports %s, the map says %s: change its \"may import\" cell to: %s",
				rel, r.line, r.name, cell(p.imports), cell(r.mayImport), cell(p.imports))
		}
		for _, imp := range p.imports {
			if j, ok := pos[imp]; ok && j < pos[r.name] {
				t.Errorf("%s:%d: `%s` imports `%s`, whose row (line %d) is above its own: lower packages never import higher ones, so move the row of `%s` above the row of `%s`",
					rel, r.line, r.name, imp, rows[j].line, r.name, imp)
			}
		}
	}
	var missing []string
	for name := range pkgs {
		if _, ok := pos[name]; !ok {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		t.Errorf("%s: package `%s` has no row in the package table: add one above every package it imports and below every package importing it,\n\t| `%s` | <its one job> | %s |",
			rel, name, name, cell(pkgs[name].imports))
	}
}

// TestTheMapsTableReader checks the reader on a table with each kind of
// mistake, so that a map that drifts cannot pass by being misread.
func TestTheMapsTableReader(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "A.md")
	md := "# x\n\n## Packages\n\n| package | its one job | may import |\n|---|---|---|\n" +
		"| `cmd/gantry` | main | cli |\n| `internal/cli` | verbs | config, status |\n| `status` | types | — |\n\n## Other\n\n| `not` | a | row |\n"
	if err := os.WriteFile(p, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(table(t, p))
	want := "[{7 cmd/gantry [cli]} {8 cli [config status]} {9 status []}]"
	if got != want {
		t.Errorf("table read %s, want %s", got, want)
	}
}

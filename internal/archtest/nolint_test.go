package archtest

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// bareNolint is a //nolint directive with no reason after it.
var bareNolint = regexp.MustCompile(`//nolint(:[\w,-]+)?\s*$`)

// TestNolintSaysWhy: the suite's linter is staticcheck, which reads no
// //nolint; such a comment is for the reader, so it says why the check
// does not apply ("//nolint:errcheck // the client went away").
func TestNolintSaysWhy(t *testing.T) {
	base := root(t)
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != base && (n == "testdata" || strings.HasPrefix(n, ".") || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			if bareNolint.MatchString(sc.Text()) {
				rel, _ := filepath.Rel(base, path)
				t.Errorf("%s:%d: a //nolint without a reason: say why after it (//nolint:errcheck // why), or drop it", filepath.ToSlash(rel), n)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

package lazyre

import (
	"strings"
	"testing"
)

// TestCompiledOnFirstUse: nothing is compiled until the pattern is used;
// then it matches as regexp does, and CompileAll names a pattern that
// does not compile.
func TestCompiledOnFirstUse(t *testing.T) {
	r := New(`(?P<n>\d+) tokens`)
	if r.re != nil {
		t.Fatal("compiled before its first use")
	}
	if m := r.FindStringSubmatch("took 42 tokens"); len(m) != 2 || m[1] != "42" || r.SubexpIndex("n") != 1 || !r.MatchString("1 tokens") {
		t.Errorf("matches %q", m)
	}
	if r.ReplaceAllString("3 tokens", "x") != "x" || r.String() != `(?P<n>\d+) tokens` {
		t.Error("replace or source text")
	}
	if err := CompileAll(); err != nil {
		t.Fatalf("every pattern so far compiles: %v", err)
	}
	New(`(unclosed`)
	if err := CompileAll(); err == nil || !strings.Contains(err.Error(), "missing closing )") {
		t.Errorf("a broken pattern: %v", err)
	}
}

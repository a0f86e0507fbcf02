// Package lazyre is a regular expression compiled the first time it is
// used. gantry's packages hold dozens of patterns — every engine's failure
// signatures and load milestones, the Hub's file names, config checks —
// that most runs never match; compiled in package init (regexp.MustCompile
// in a var), they cost every gantry process 0.65 MB of allocations before
// main, kept in an idle daemon's heap with its first collection not come,
// and their compiler's code in its resident pages: 1.2 MB of an idle
// gantry's 16.6 MB RSS.
//
// A pattern that does not compile panics at its first use, as
// regexp.MustCompile would have at start; CompileAll compiles every
// pattern made so far, for a test that links them all.
package lazyre

import (
	"errors"
	"regexp"
	"sync"
)

// Regexp is a pattern compiled on first use. Safe for concurrent use.
type Regexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

var (
	mu  sync.Mutex
	all []*Regexp
)

// New returns expr, to be compiled when first used.
func New(expr string) *Regexp {
	r := &Regexp{expr: expr}
	mu.Lock()
	all = append(all, r)
	mu.Unlock()
	return r
}

// Regexp is the compiled pattern (compiled now, on the first call).
func (r *Regexp) Regexp() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.expr) })
	return r.re
}

// MatchString is regexp.Regexp's.
func (r *Regexp) MatchString(s string) bool { return r.Regexp().MatchString(s) }

// FindStringSubmatch is regexp.Regexp's.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.Regexp().FindStringSubmatch(s) }

// FindAllString is regexp.Regexp's.
func (r *Regexp) FindAllString(s string, n int) []string { return r.Regexp().FindAllString(s, n) }

// ReplaceAllString is regexp.Regexp's.
func (r *Regexp) ReplaceAllString(src, repl string) string {
	return r.Regexp().ReplaceAllString(src, repl)
}

// ReplaceAllStringFunc is regexp.Regexp's.
func (r *Regexp) ReplaceAllStringFunc(src string, repl func(string) string) string {
	return r.Regexp().ReplaceAllStringFunc(src, repl)
}

// SubexpIndex is regexp.Regexp's.
func (r *Regexp) SubexpIndex(name string) int { return r.Regexp().SubexpIndex(name) }

// String is the pattern's source text.
func (r *Regexp) String() string { return r.expr }

// CompileAll compiles every pattern New has made and returns the errors
// of those that do not compile.
func CompileAll() error {
	mu.Lock()
	rs := append([]*Regexp(nil), all...)
	mu.Unlock()
	var errs []error
	for _, r := range rs {
		if _, err := regexp.Compile(r.expr); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

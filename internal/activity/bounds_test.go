package activity

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestClientFieldsAreCut: a request naming a 1.5 MiB model (and a long
// route, and an engine's long error code) is recorded with each field
// cut and marked, so one segment stays small and every query answers.
func TestClientFieldsAreCut(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 30, 1000, time.Now)
	huge := strings.Repeat("é", 800<<10) // 1.6 MB, two bytes a rune: a cut must not split one
	for i := 0; i < 20; i++ {
		s.Add(Pending{Record: Record{Time: time.Now(), Route: "/upstream/" + huge, Model: huge, Served: huge + "@peer",
			Preset: huge, Key: huge, Status: 404}, ErrorBody: []byte(`{"error":{"code":"` + huge + `"}}`)})
	}
	add(s, time.Now(), "real", 3)
	s.Close()
	s = open(t, dir, 30, 1000, time.Now)
	defer s.Close()
	res, err := s.Query(Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 23 || res.Records[0].Model != "real" || res.Skipped != 0 {
		t.Fatalf("%d records (%d skipped), newest %.80s", len(res.Records), res.Skipped, res.Records[0].Model)
	}
	r := res.Records[3]
	for name, c := range map[string]struct {
		v   string
		max int
	}{"model": {r.Model, MaxName}, "served": {r.Served, MaxName}, "preset": {r.Preset, MaxName}, "key": {r.Key, MaxName},
		"error": {r.Error, MaxName}, "route": {r.Route, MaxRoute}} {
		if len(c.v) > c.max || !strings.HasSuffix(c.v, Cut) || !utf8.ValidString(c.v) {
			t.Errorf("%s: %d bytes, ends %q", name, len(c.v), c.v[max(0, len(c.v)-10):])
		}
	}
	if !r.Cut {
		t.Error("a cut record is not marked cut")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	var size int64
	for _, f := range files {
		st, _ := os.Stat(f)
		size += st.Size()
	}
	if size > 64<<10 {
		t.Errorf("23 records take %d bytes on disk", size)
	}
}

// TestBadLinesAreSkippedAndCounted: a segment with a line longer than a
// reader's buffer (written by a gantry before the cut) and a corrupt one
// between real records answers its real records, with the bad lines
// counted — after a restart too, where the segment was left out before.
func TestBadLinesAreSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	rec := func(model string) string {
		return fmt.Sprintf(`{"time":%q,"route":"/v1/chat/completions","model":%q,"status":200}`, now.Format(time.RFC3339Nano), model)
	}
	lines := []string{rec("one"), `{"time":"` + strings.Repeat("x", 2<<20) + `"}`, "not json at all", rec("two")}
	path := filepath.Join(dir, fmt.Sprintf("%s%020d%s", segPrefix, now.Add(-time.Minute).UnixNano(), segSuffix))
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir, 30, 1000, time.Now)
	defer s.Close()
	add(s, now, "three", 1)
	res, err := s.Query(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Records {
		got = append(got, r.Model)
	}
	if strings.Join(got, " ") != "three two one" || res.Skipped != 2 {
		t.Errorf("records %v, %d skipped", got, res.Skipped)
	}
}

// TestRetentionRemovesWhatItCannotRead: segments past keep_days go even
// when they cannot be read (a line too long for the old reader, a
// segment that is not a file): retention manages every segment of its
// folder, not only the ones that parsed.
func TestRetentionRemovesWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	old := now.AddDate(0, 0, -10)
	name := func(at time.Time, tail string) string {
		return filepath.Join(dir, fmt.Sprintf("%s%020d%s%s", segPrefix, at.UnixNano(), tail, segSuffix))
	}
	long := name(old, "")
	os.WriteFile(long, []byte(`{"time":"`+old.Format(time.RFC3339)+`","model":"`+strings.Repeat("m", 2<<20)+`"}`+"\n"), 0o600)
	notFile := name(old, "-1")
	os.Mkdir(notFile, 0o700)
	garbage := name(old, "-2")
	os.WriteFile(garbage, []byte("\x00\x01garbage"), 0o600)
	for _, p := range []string{long, notFile, garbage} {
		os.Chtimes(p, old, old) // last written then
	}
	s := open(t, dir, 7, 1000, func() time.Time { return now })
	defer s.Close()
	for _, p := range []string{long, notFile, garbage} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s, past keep_days, is still there", filepath.Base(p))
		}
	}
	if _, err := s.Query(Filter{}); err != nil {
		t.Errorf("query: %v", err)
	}
}

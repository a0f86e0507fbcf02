package sim

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/progress"
)

// TestLoadLinesAreReadAsProgress: every line the sim prints while loading
// is one gantry's progress reader understands, and the bars count up.
func TestLoadLinesAreReadAsProgress(t *testing.T) {
	for flavor, lines := range loadLines {
		var out bytes.Buffer
		printLoad(context.Background(), flavor, time.Millisecond*time.Duration(len(lines)+1), &out)
		segs := strings.FieldsFunc(out.String(), func(r rune) bool { return r == '\r' || r == '\n' })
		if len(segs) < len(lines) {
			t.Fatalf("%s: %d segments for %d lines: %q", flavor, len(segs), len(lines), out.String())
		}
		last := progress.Step{}
		for _, seg := range segs {
			st, ok := engine.LoadProgress().Parse(seg)
			if !ok {
				t.Errorf("%s: %q is no progress step", flavor, seg)
				continue
			}
			if strings.Contains(seg, "%!") {
				t.Errorf("%s: bad format in %q", flavor, seg)
			}
			if st.Phase == last.Phase && st.Total > 0 && st.Done < last.Done {
				t.Errorf("%s: the bar went back: %+v after %+v", flavor, st, last)
			}
			last = st
		}
	}
}

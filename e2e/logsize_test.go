package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// TestEngineLogStaysWithinItsSize: an engine that writes 80 MB of output
// as fast as it can (a Python warning loop, a CUDA assert storm) leaves no
// log file over the 20 MiB a file keeps: the engine's writes wake gantry,
// which rotates at the size (polling every 250 ms let one grow to 150 MB),
// and a rotated copy keeps the newest 20 MiB.
func TestEngineLogStaysWithinItsSize(t *testing.T) {
	home := t.TempDir()
	spam := filepath.Join(home, "spam.sh")
	os.WriteFile(spam, []byte(`#!/bin/sh
head -c 83886080 /dev/zero | tr '\0' x | fold -w 999
echo "spam done"
exec "$GANTRY" sim --port "$PORT" --model spam
`), 0o755)
	port := testbin.FreePort(t)
	d := startDaemon(t, fmt.Sprintf(`
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  spam:
    engine: command
    mode: always-on
    memory: 1GiB
    port: %d
    command: [%s]
    env: {GANTRY: %s, PORT: "%d"}
`, port, spam, testbin.Gantry(t), port))
	d.waitState("spam", "ready", 120*time.Second)
	files, _ := filepath.Glob(filepath.Join(d.home, "ai", "logs", "command", "spam.log*"))
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
		if st.Size() > 21<<20 {
			t.Errorf("%s is %d MiB, over the 20 MiB a log file keeps", filepath.Base(f), st.Size()>>20)
		}
	}
	if len(files) < 2 || total > 4*21<<20 {
		t.Errorf("%d log files, %d MiB in all", len(files), total>>20)
	}
	if out := d.logs("spam"); !strings.Contains(out, "spam done") {
		t.Errorf("the engine's last lines are not in its log:\n%.500s", out)
	}
}

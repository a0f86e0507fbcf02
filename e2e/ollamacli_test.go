package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/gguf"
	"github.com/gantryhq/gantry/internal/testbin"
)

// TestOllamaCLI: Ollama's own CLI (v0.17.4, the binary ./test.sh builds)
// pointed at gantry's Ollama API with OLLAMA_HOST: `list` and `ps` print
// each model's ID (the first 12 digits of a 64-hex digest, stable per
// model, shared by its aliases) and a real modified time, `show` the
// architecture and context length from model_info, `run` answers, and
// `pull` and `rm` are refused in gantry's words.
func TestOllamaCLI(t *testing.T) {
	ollama := ollamaTodayBin(t)
	olisten := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
	var ggufPath string
	d := startDaemonWith(t, func(home string) string {
		ggufPath = filepath.Join(home, "tiny.gguf")
		if _, err := gguf.TinyLlama(ggufPath, gguf.Tiny{}); err != nil {
			t.Fatal(err)
		}
		return `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
ollama_api: {listen: "` + olisten + `"}
models:
  tiny: {engine: sim, path: "` + ggufPath + `", context: 256, memory: 1GiB, aliases: [tiny-alias], args: [--tokens, "6"]}
  chat: {engine: sim, memory: 1GiB, args: [--tokens, "6"]}
`
	})
	cli := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(ollama, args...)
		cmd.Env = append(os.Environ(), "OLLAMA_HOST="+olisten, "HOME="+d.home, "NO_COLOR=1", "TERM=dumb")
		return combined(t, cmd)
	}

	out, code := cli("list")
	id := regexp.MustCompile(`(?m)^tiny\s+([0-9a-f]{12})\s+.*\s(\d+ \w+ ago|About a minute ago|Less than a second ago)\s*$`).FindStringSubmatch(out)
	if code != 0 || id == nil || strings.Contains(out, "panic") {
		t.Fatalf("ollama list: exit %d\n%s", code, out)
	}
	if !regexp.MustCompile(`(?m)^tiny-alias\s+`+id[1]).MatchString(out) || regexp.MustCompile(`(?m)^chat\s+`+id[1]).MatchString(out) {
		t.Errorf("the alias does not share tiny's ID %s, or chat does:\n%s", id[1], out)
	}
	if again, _ := cli("list"); !strings.Contains(again, id[1]) {
		t.Errorf("the ID changed between two lists:\n%s\n%s", out, again)
	}
	if strings.Contains(out, "years ago") {
		t.Errorf("a modified time of 1970:\n%s", out)
	}

	out, code = cli("show", "tiny")
	if code != 0 || !regexp.MustCompile(`architecture\s+llama`).MatchString(out) || !regexp.MustCompile(`context length\s+256`).MatchString(out) {
		t.Errorf("ollama show: exit %d\n%s", code, out)
	}

	out, code = cli("run", "tiny", "Hallo")
	if code != 0 || !strings.Contains(out, "Hallo") {
		t.Errorf("ollama run: exit %d\n%s", code, out)
	}
	d.waitState("tiny", "ready", 10*time.Second)
	out, code = cli("ps")
	if code != 0 || !regexp.MustCompile(`(?m)^tiny\s+`+id[1]+`\s+.*\s256\s`).MatchString(out) || strings.Contains(out, "panic") {
		t.Errorf("ollama ps: exit %d\n%s", code, out)
	}

	out, code = cli("pull", "llama3")
	if code == 0 || !strings.Contains(out, "models are managed by gantry: gantry pulls no models through Ollama's API") {
		t.Errorf("ollama pull: exit %d\n%s", code, out)
	}
	out, code = cli("rm", "tiny")
	if code == 0 || !strings.Contains(out, "models are managed by gantry: gantry deletes no models through Ollama's API: remove the model from gantry's config") {
		t.Errorf("ollama rm: exit %d\n%s", code, out)
	}
	if st := d.status(); len(st.Models) != 2 {
		t.Errorf("rm changed the models: %+v", st.Models)
	}
}

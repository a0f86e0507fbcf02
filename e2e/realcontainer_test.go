package e2e

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/gguf"
	"github.com/gantryhq/gantry/internal/testbin"
)

// ollamaImage builds, without a registry, an image of a real engine: a
// Debian root made by debootstrap (./test.sh makes it once, from Debian's
// packages, as GANTRY_DEBIAN_ROOTFS) with today's Ollama in /usr/bin, and
// the launch contract of the ollama/ollama image (ENTRYPOINT
// ["/bin/ollama"], CMD ["serve"], OLLAMA_HOST=0.0.0.0:11434), imported
// into the test daemon with `docker import`.
func ollamaImage(t *testing.T, tag string) {
	t.Helper()
	rootfs := installed(t, "GANTRY_DEBIAN_ROOTFS", "a Debian root made by debootstrap")
	bin := ollamaTodayBin(t)
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(out)
	in, err := os.Open(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", rootfs, err)
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	in.Close()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	// /bin is a link to usr/bin in Debian's merged /usr.
	tw.WriteHeader(&tar.Header{Name: "./usr/bin/ollama", Mode: 0o755, Size: int64(len(b)), ModTime: time.Unix(0, 0)})
	tw.Write(b)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	docker(t, "import",
		"--change", `ENTRYPOINT ["/bin/ollama"]`, "--change", `CMD ["serve"]`,
		"--change", "ENV OLLAMA_HOST=0.0.0.0:11434", "--change", "EXPOSE 11434",
		path, tag)
}

// TestRealOllamaInContainer runs a real engine in a container through the
// Engine API: Ollama v0.17.4 in a Debian image, engine ollama with
// runtime: docker. The GGUF is registered through Ollama's API (the
// container cannot see the host's path), the chat and stream go through
// gantry, /api/ps's size becomes the reservation, and gantry's stop leaves
// no container.
func TestRealOllamaInContainer(t *testing.T) {
	const tag = "gantry-e2e/ollama-debian:0.17.4"
	ollamaImage(t, tag)
	port := testbin.FreePort(t)
	d := containerDaemon(t, `
  tiny: {engine: ollama, runtime: docker, image: "`+tag+`", path: tiny.gguf, start_timeout: 2m, idle_timeout: 10m}
engines:
  ollama: {port: `+strconv.Itoa(port)+`}
`, func(models string) {
		if _, err := gguf.TinyLlama(filepath.Join(models, "tiny.gguf"), gguf.Tiny{}); err != nil {
			t.Fatal(err)
		}
	})
	c := d.oai("")
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("tiny", "Hallo"))
	if err != nil {
		t.Fatalf("chat: %v\n%s", err, d.logs("tiny"))
	}
	if resp.Usage.CompletionTokens <= 0 {
		t.Errorf("answer %+v", resp)
	}
	streamTiny(t, c)
	st := d.status().Model("tiny")
	if st.Runtime != "docker" || !strings.HasPrefix(st.MemorySource, "measured: the engine reports") {
		t.Errorf("status: runtime %s, memory %d from %q", st.Runtime, st.MemoryBytes, st.MemorySource)
	}
	ps := docker(t, "ps", "--filter", "label=gantry.root="+filepath.Join(d.home, "ai"), "--format", "{{.Image}} {{.Ports}}")
	if !strings.Contains(ps, tag) || !strings.Contains(ps, "127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("the engine's container: %q", ps)
	}
	if logs, _ := d.gantry("logs", "-n", "5000", "tiny"); !strings.Contains(logs, "uploaded to ollama") {
		t.Errorf("the model was not registered through the API:\n%s", logs)
	}
	// containerDaemon's cleanup checks that gantry's stop leaves no container.
}

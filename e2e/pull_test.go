package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gantryhq/gantry/internal/testbin"
)

// registry runs a real registry (Debian's docker-registry, the CNCF
// distribution) on loopback, which dockerd reaches over plain HTTP (loopback
// registries are insecure-allowed by default), and returns host:port.
func registry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("docker-registry is not installed: ./test.sh installs Debian's docker-registry")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte("version: 0.1\nstorage: {filesystem: {rootdirectory: "+filepath.Join(dir, "data")+"}}\nhttp: {addr: "+addr+"}\nlog: {level: warn}\n"), 0o644)
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testbin.WaitHTTP(t, "http://"+addr+"/v2/", 10*time.Second)
	return addr
}

// pushed puts a stand-in image into the registry under ref and removes
// it from the daemon, layers and all, so a pull has bytes to fetch.
func pushed(t *testing.T, reg string) string {
	t.Helper()
	local := imageSpec{tag: "gantry-test/pulled:v1", paths: []string{"/usr/local/bin/vllm", "/usr/local/bin/pulled"}, entrypoint: []string{"vllm", "serve"}}
	loadImage(t, local)
	ref := reg + "/gantry-test/pulled:v1"
	docker(t, "tag", local.tag, ref)
	docker(t, "push", ref)
	docker(t, "rmi", local.tag, ref)
	return ref
}

// TestPullWithProgress: a missing image fails the start and says to pull;
// gantry pull fetches it from a real registry with progress; pull: missing
// pulls at the start; doctor lists the image with its digest.
func TestPullWithProgress(t *testing.T) {
	ref := pushed(t, registry(t))
	d := containerDaemon(t, `
  p: {engine: vllm, runtime: docker, image: "`+ref+`", path: m, memory: 2GiB}
  q: {engine: vllm, runtime: docker, image: "`+ref+`", path: m, memory: 2GiB, pull: missing}
`)
	if out, code := d.gantry("start", "p"); code == 0 || !strings.Contains(out, "is not present: run gantry pull") {
		t.Fatalf("start without the image: exit %d\n%s", code, out)
	}
	// The dashboard, open during the pull, shows it from the event stream.
	ctx := browser(t)
	step(t, d, ctx, chromedp.Navigate(d.url+"/"))
	step(t, d, ctx, chromedp.Poll[bool](`document.getElementById("conn").dataset.events === "open"`, chromedp.WithPollingTimeout(20*time.Second)))
	out, code := d.gantry("pull", "p")
	if code != 0 || !strings.Contains(out, "pulling "+ref+": ") || !strings.Contains(out, ref+" (p): pulled") {
		t.Fatalf("pull: exit %d\n%s", code, out)
	}
	step(t, d, ctx, chromedp.Poll[bool](`document.getElementById("pulls").innerText.includes("pulled")`, chromedp.WithPollingTimeout(20*time.Second)))
	if text := step(t, d, ctx, chromedp.Text(`#pulls`)); !strings.Contains(text, ref) {
		t.Errorf("the dashboard's pulls: %q", text)
	}
	if out, code := d.gantry("start", "p"); code != 0 {
		t.Fatalf("start after the pull: %s", out)
	}
	out, _ = d.gantry("doctor", "--config", d.config)
	if !strings.Contains(out, ref+": present") || !strings.Contains(out, "digest sha256:") {
		t.Errorf("doctor does not list the image:\n%s", out)
	}

	// pull: missing pulls at the start.
	d.gantry("stop", "p")
	docker(t, "rmi", ref)
	if out, code := d.gantry("start", "q"); code != 0 {
		t.Fatalf("start with pull: missing: %s", out)
	}
	if logs := d.logs("q"); !strings.Contains(logs, "pulled "+ref) {
		t.Errorf("the start's log does not say it pulled:\n%s", logs)
	}
}

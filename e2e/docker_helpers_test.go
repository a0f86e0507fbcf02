package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// dockerHost is the test Docker daemon ./test.sh starts (dockerd 20.10 from
// Debian's docker.io, with a do-nothing nvidia-container-runtime-hook on
// its PATH so that GPU device requests are accepted on a machine without
// GPUs).
func dockerHost(t *testing.T) string {
	t.Helper()
	h := os.Getenv("GANTRY_TEST_DOCKER_HOST")
	if h == "" {
		t.Fatal("no test Docker daemon: run ./test.sh, which starts dockerd and sets GANTRY_TEST_DOCKER_HOST")
	}
	return h
}

// docker runs the docker CLI against the test daemon.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	return dockerAt(t, dockerHost(t), args...)
}

// dockerAt runs the docker CLI against the daemon at host.
func dockerAt(t *testing.T, host string, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

var (
	standinOnce sync.Once
	standinPath string
	standinErr  error
)

// standin builds the engine stand-in (e2e/standin), static, once.
func standin(t *testing.T) []byte {
	t.Helper()
	standinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gantry-standin-")
		if err != nil {
			standinErr = err
			return
		}
		standinPath = filepath.Join(dir, "standin")
		cmd := exec.Command("go", "build", "-o", standinPath, "./standin")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			standinErr = fmt.Errorf("build the stand-in: %v\n%s", err, out)
		}
	})
	if standinErr != nil {
		t.Fatal(standinErr)
	}
	b, err := os.ReadFile(standinPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imageSpec is a FROM-scratch test image: the stand-in at each of paths
// (the first a file, the rest hard links to it), with an entrypoint and
// architecture of the image's real contract.
type imageSpec struct {
	tag        string
	paths      []string
	entrypoint []string
	cmd        []string
	arch       string // default the host's
}

// loadImage builds the image as `docker save` writes one and loads it
// into the test daemon: no registry, no Dockerfile.
func loadImage(t *testing.T, im imageSpec) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.tar")
	os.WriteFile(path, imageArchive(t, im, standin(t)), 0o644)
	docker(t, "load", "-i", path)
}

// imageArchive is the image with bin at its paths, as `docker save`
// writes one (what `docker load` and `ctr images import` read).
func imageArchive(t *testing.T, im imageSpec, bin []byte) []byte {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := map[string]bool{}
	for _, p := range im.paths {
		p = strings.TrimPrefix(p, "/")
		for d := filepath.Dir(p); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sortStrings(ds)
	for _, d := range ds {
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)})
	}
	first := strings.TrimPrefix(im.paths[0], "/")
	tw.WriteHeader(&tar.Header{Name: first, Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0)})
	tw.Write(bin)
	for _, p := range im.paths[1:] {
		tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Typeflag: tar.TypeLink, Linkname: first, Mode: 0o755, ModTime: time.Unix(0, 0)}) // a link carries the inode's mode
	}
	tw.Close()
	diff := sha256.Sum256(layer.Bytes())
	arch := im.arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
		"config": map[string]any{"Entrypoint": im.entrypoint, "Cmd": im.cmd,
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diff[:])}},
	})
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	manifest, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{im.tag}, "Layers": []string{"layer/layer.tar"}}})
	var img bytes.Buffer
	iw := tar.NewWriter(&img)
	for _, f := range []struct {
		name string
		data []byte
	}{{cfgName, cfg}, {"layer/layer.tar", layer.Bytes()}, {"manifest.json", manifest}} {
		iw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)})
		iw.Write(f.data)
	}
	iw.Close()
	return img.Bytes()
}

// loadImageAt loads the image into the daemon at host.
func loadImageAt(t *testing.T, host string, im imageSpec) {
	t.Helper()
	t.Setenv("GANTRY_TEST_DOCKER_HOST", host)
	loadImage(t, im)
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// The images of issue 15, with their real entrypoints (see
// internal/container/contract_test.go for the Dockerfiles they come from).
var (
	vllmOpenAI = imageSpec{tag: "gantry-test/vllm-openai:v0.11.0", paths: []string{"/usr/local/bin/vllm"}, entrypoint: []string{"vllm", "serve"}}
	ngcVLLM    = imageSpec{tag: "gantry-test/nvidia-vllm:26.05-py3", paths: []string{"/opt/nvidia/nvidia_entrypoint.sh", "/usr/local/bin/vllm"},
		entrypoint: []string{"/opt/nvidia/nvidia_entrypoint.sh"}}
	sglangImage = imageSpec{tag: "gantry-test/sglang:v0.5.0", paths: []string{"/usr/bin/python3"}}
	llamaImage  = imageSpec{tag: "gantry-test/llama.cpp:server-cuda", paths: []string{"/app/llama-server"}, entrypoint: []string{"/app/llama-server"}}
)

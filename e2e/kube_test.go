package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gantryhq/gantry/internal/testbin"
)

// TestKubeExportAcceptedByAPIServer: every object `gantry export
// kubernetes` writes for the example config and for the seed's set-up is
// accepted by server-side apply on a real kube-apiserver (with the CRDs
// of the Gateway API, the Inference Extension and LeaderWorkerSet), and
// reads back with every field the export wrote, equal.
func TestKubeExportAcceptedByAPIServer(t *testing.T) {
	k := startControlPlane(t)
	home := t.TempDir()
	for _, tc := range []struct {
		name, config string
		models       string
	}{
		// the example's demo is `gantry sim`, natively: refused below
		{"example", "../examples/gantry.yaml", "scout,qwen-uncensored,r1-8b,bge-m3,qwen-ollama"},
		{"seed", "realkube/seed.yaml", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "k8s")
			args := []string{"export", "kubernetes", "--config", tc.config, "--out", out}
			if tc.models != "" {
				args = append(args, "--models", tc.models)
			}
			if msg, code := exportRun(t, home, args...); code != 0 {
				t.Fatalf("export: exit %d\n%s", code, msg)
			}
			if msg, err := k.kubectl("apply", "--server-side", "--field-manager", "gantry-test", "-f", out); err != nil {
				t.Fatalf("server-side apply refused the export: %v\n%s", err, msg)
			}
			compareReadBack(t, k, out)
		})
	}
	// What cannot be expressed is refused with its reason, nothing written.
	out := filepath.Join(t.TempDir(), "k8s")
	msg, code := exportRun(t, home, "export", "kubernetes", "--config", "../examples/gantry.yaml", "--out", out)
	if code != 1 || !strings.Contains(msg, "demo: runtime native, engine sim: no container image") {
		t.Errorf("the example's sim model: exit %d\n%s", code, msg)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused export wrote files")
	}
}

// exportRun runs gantry with the config's secrets unset: export must not
// need them.
func exportRun(t *testing.T, home string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(testbin.Gantry(t), args...)
	var env []string
	for _, kv := range cleanEnv() {
		if !strings.HasPrefix(kv, "GANTRY_API_KEY=") && !strings.HasPrefix(kv, "HF_TOKEN=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "HOME="+home)
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(b), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(b), 0
}

// compareReadBack reads every exported object back from the API server
// and checks that each field the export wrote is there with its value
// (the server adds defaults and status; it must change nothing we set).
func compareReadBack(t *testing.T, k *kubeCluster, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	n := 0
	for _, f := range files {
		for _, obj := range readObjects(t, f) {
			n++
			want := jsonNormal(t, obj)
			meta := want["metadata"].(map[string]any)
			ref := fmt.Sprintf("%s/%s", kindRef(want), meta["name"])
			args := []string{"get", ref, "-o", "json"}
			if ns, ok := meta["namespace"].(string); ok {
				args = append(args, "-n", ns)
			}
			got, err := k.kubectl(args...)
			if err != nil {
				t.Errorf("%s: %v\n%s", ref, err, got)
				continue
			}
			var have map[string]any
			if err := json.Unmarshal([]byte(got), &have); err != nil {
				t.Fatalf("%s: %v", ref, err)
			}
			if diff := subset("", want, have); diff != "" {
				t.Errorf("%s (%s) read back differently: %s", ref, filepath.Base(f), diff)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d objects exported", n)
	}
	t.Logf("%d objects applied and read back equal", n)
}

// kindRef is kind.group for kubectl get (kind alone for the core group).
func kindRef(o map[string]any) string {
	group, _, found := strings.Cut(o["apiVersion"].(string), "/")
	if !found {
		return o["kind"].(string)
	}
	return o["kind"].(string) + "." + group
}

// jsonNormal is v as JSON would decode it (numbers as float64).
func jsonNormal(t *testing.T, v map[string]any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

// subset says where want is not contained in have ("" when it is):
// objects by key, lists element by element with the same length.
func subset(path string, want, have any) string {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want an object, have %v", path, have)
		}
		for key, wv := range w {
			hv, ok := h[key]
			if !ok {
				return fmt.Sprintf("%s.%s: missing (want %v)", path, key, wv)
			}
			if d := subset(path+"."+key, wv, hv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return fmt.Sprintf("%s: want %#v, have %#v", path, want, have)
		}
		for i := range w {
			if d := subset(fmt.Sprintf("%s[%d]", path, i), w[i], h[i]); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(want, have) {
		return fmt.Sprintf("%s: want %#v, have %#v", path, want, have)
	}
	return ""
}

// TestKubeExportRunsOnANode: the exported sim model runs on a real
// single-node cluster — the API server, controller manager and scheduler
// place the Deployment's pod on a kubelet over Debian's containerd, in an
// image built FROM scratch with gantry in it; it becomes ready through
// the exported probes and answers a chat through its Service's ClusterIP
// (kube-proxy's rules).
func TestKubeExportRunsOnANode(t *testing.T) {
	k := startControlPlane(t)
	node := k.startNode()
	// static: the image has no C library (testbin's gantry is linked to it)
	gantryBin := buildStatic(t, "../cmd/gantry")
	pause := buildStatic(t, "./realkube/pause")
	node.importImage(imageArchive(t, imageSpec{tag: kubePauseTag, paths: []string{"/pause"}, entrypoint: []string{"/pause"}}, pause))
	node.importImage(imageArchive(t, imageSpec{tag: "gantry-test/sim:v1", paths: []string{"/usr/local/bin/gantry"}}, gantryBin))

	home := t.TempDir()
	cfg := filepath.Join(home, "gantry.yaml")
	os.WriteFile(cfg, []byte(`
engines: {sim: {image: "gantry-test/sim:v1"}}
kubernetes: {namespace: gantry-run}
models:
  chat: {engine: sim, port: 30500, memory: 1GiB, mode: always-on, aliases: [default],
         args: [--load-time, 3s, --tokens, "5"], start_timeout: 2m}
`), 0o644)
	out := filepath.Join(home, "k8s")
	if msg, code := exportRun(t, home, "export", "kubernetes", "--config", cfg, "--out", out); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, msg)
	}
	// The namespace, and the engine's Deployment and Service. The endpoint
	// picker's image is not on this machine (and no registry may be
	// reached): its objects are the API server test's.
	objs := readObjects(t, filepath.Join(out, "00-namespace.yaml"), filepath.Join(out, "chat.yaml"))
	var keep []map[string]any
	for _, o := range objs {
		meta := o["metadata"].(map[string]any)
		if o["kind"] == "Namespace" || (o["kind"] == "Deployment" || o["kind"] == "Service") && meta["name"] == "gantry-chat" {
			keep = append(keep, o)
		}
	}
	if len(keep) != 3 {
		t.Fatalf("want the namespace, Deployment and Service, got %d objects", len(keep))
	}
	apply := filepath.Join(home, "run.yaml")
	writeObjects(t, apply, keep)
	if msg, err := k.kubectl("apply", "--server-side", "-f", apply); err != nil {
		t.Fatalf("apply: %v\n%s", err, msg)
	}
	if msg, err := k.kubectl("wait", "-n", "gantry-run", "--for=condition=Ready", "pod", "-l", "gantry.model=chat", "--timeout=240s"); err != nil {
		pods, _ := k.kubectl("get", "-n", "gantry-run", "pods", "-o", "yaml")
		events, _ := k.kubectl("get", "-n", "gantry-run", "events")
		t.Fatalf("the pod did not become ready: %v\n%s\n%s\n%s\nkubelet:\n%s\ncontainerd:\n%s", err, msg, pods, events, k.logTail("kubelet"), k.logTail("containerd"))
	}
	// Ready came from the exported probes: the kubelet ran them against
	// the engine's ready path.
	probe, _ := k.kubectl("get", "-n", "gantry-run", "pod", "-l", "gantry.model=chat", "-o", "jsonpath={.items[0].spec.containers[0].readinessProbe.httpGet.path} {.items[0].status.containerStatuses[0].started}")
	if strings.TrimSpace(probe) != "/health true" {
		t.Errorf("probe and start: %q", probe)
	}
	ip, err := k.kubectl("get", "-n", "gantry-run", "service", "gantry-chat", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil || !strings.HasPrefix(ip, "10.96.0.") {
		t.Fatalf("cluster IP %q: %v", ip, err)
	}
	// kube-proxy's rule for the ClusterIP is in place before any packet
	// is sent to it.
	waitFor(t, 60*time.Second, "kube-proxy's rule for "+ip, func() bool {
		b, _ := exec.Command("iptables", "-t", "nat", "-S", "KUBE-SERVICES").Output()
		return strings.Contains(string(b), ip+"/32")
	})
	body := `{"model":"chat","messages":[{"role":"user","content":"Hallo"}]}`
	var answer string
	waitFor(t, 30*time.Second, "a chat through the Service", func() bool {
		b, err := exec.Command("curl", "-sS", "--max-time", "5", "-H", "Content-Type: application/json",
			"-d", body, "http://"+ip+":30500/v1/chat/completions").CombinedOutput()
		answer = string(b)
		return err == nil && strings.Contains(answer, `"chat.completion"`)
	})
	if !strings.Contains(answer, `"model":"chat"`) {
		t.Errorf("the answer: %s", answer)
	}
}

// buildStatic builds a Go program statically and returns the binary.
func buildStatic(t *testing.T, pkg string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bin")
	cmd := exec.Command("go", "build", "-o", p, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readObjects(t *testing.T, files ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		for {
			var o map[string]any
			if dec.Decode(&o) != nil {
				break
			}
			out = append(out, o)
		}
	}
	return out
}

func writeObjects(t *testing.T, path string, objs []map[string]any) {
	t.Helper()
	var b strings.Builder
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n" + string(y))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

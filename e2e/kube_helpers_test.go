package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// kubeCluster is a real Kubernetes control plane: etcd and kube-apiserver
// as ./test.sh builds them from their Go modules (e2e/realkube/build.sh),
// each a process of the test's, with the Gateway API, Inference Extension,
// LeaderWorkerSet and InferenceModelRewrite CRDs installed.
type kubeCluster struct {
	t          *testing.T
	bin        string // the folder of the binaries
	dir        string
	server     string // https://127.0.0.1:PORT
	token      string // a system:masters token (tokens.csv)
	kubeconfig string
	etcd       string // http://127.0.0.1:PORT
}

// startControlPlane starts etcd and kube-apiserver on free loopback ports
// and installs the CRDs; both stop when the test ends.
func startControlPlane(t *testing.T) *kubeCluster {
	t.Helper()
	bin := installed(t, "GANTRY_KUBE", "Kubernetes, built from its Go modules")
	k := &kubeCluster{t: t, bin: bin, dir: t.TempDir(), token: "gantry-test-admin-token"}
	k.startEtcd()
	k.startAPIServer()
	k.writeKubeconfig()
	out, err := k.kubectl("apply", "--server-side", "-f", filepath.Join(bin, "crds"))
	if err != nil {
		t.Fatalf("installing the CRDs: %v\n%s", err, out)
	}
	if out, err := k.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"); err != nil {
		t.Fatalf("the CRDs are not established: %v\n%s", err, out)
	}
	return k
}

// daemonProc starts a long-running process of the cluster, its output in
// DIR/NAME.log, killed when the test ends.
func (k *kubeCluster) daemonProc(name string, args ...string) *exec.Cmd {
	k.t.Helper()
	return k.daemonProcAt(name, filepath.Join(k.bin, name), args...)
}

// daemonProcAt is daemonProc of the program at path.
func (k *kubeCluster) daemonProcAt(name, path string, args ...string) *exec.Cmd {
	k.t.Helper()
	logf, err := os.Create(filepath.Join(k.dir, name+".log"))
	if err != nil {
		k.t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		k.t.Fatalf("start %s: %v", name, err)
	}
	k.t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	return cmd
}

// logTail is the end of a component's log, for a failure message.
func (k *kubeCluster) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(k.dir, name+".log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func (k *kubeCluster) startEtcd() {
	client, peer := testbin.FreePort(k.t), testbin.FreePort(k.t)
	k.etcd = "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	k.daemonProc("etcd", "--name", "default", "--data-dir", filepath.Join(k.dir, "etcd"),
		"--listen-client-urls", k.etcd, "--advertise-client-urls", k.etcd,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL)
	k.waitOK(k.etcd+"/health", 60*time.Second, "etcd")
}

// startAPIServer runs kube-apiserver with a self-signed serving
// certificate, a service-account key pair made here, a static token of
// system:masters, and RBAC.
func (k *kubeCluster) startAPIServer() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		k.t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saKey, saPub := filepath.Join(k.dir, "sa.key"), filepath.Join(k.dir, "sa.pub")
	os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
	tokens := filepath.Join(k.dir, "tokens.csv")
	os.WriteFile(tokens, []byte(k.token+",gantry-test-admin,1000,system:masters\n"), 0o600)
	port := testbin.FreePort(k.t)
	k.server = "https://127.0.0.1:" + strconv.Itoa(port)
	k.daemonProc("kube-apiserver",
		"--etcd-servers", k.etcd,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--cert-dir", filepath.Join(k.dir, "pki"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--token-auth-file", tokens, "--authorization-mode", "Node,RBAC",
		"--service-cluster-ip-range", kubeServiceCIDR,
		"--allow-privileged=true")
	k.waitOK(k.server+"/readyz", 180*time.Second, "kube-apiserver")
}

// kubeServiceCIDR is the Services' virtual range. A test that reaches a
// ClusterIP first routes this range onto its own bridge, so that a packet
// kube-proxy did not rewrite goes nowhere, never out of the machine.
const kubeServiceCIDR = "10.96.0.0/24"

// waitOK polls url (with the token on the API server) until it answers 200.
func (k *kubeCluster) waitOK(url string, timeout time.Duration, what string) {
	k.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+k.token)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	k.t.Fatalf("%s not ready after %s (%s); its log ends:\n%s", what, timeout, last, k.logTail(strings.ReplaceAll(what, " ", "-")))
}

func (k *kubeCluster) writeKubeconfig() {
	k.kubeconfig = filepath.Join(k.dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, k.server, k.token)
	if err := os.WriteFile(k.kubeconfig, []byte(cfg), 0o600); err != nil {
		k.t.Fatal(err)
	}
}

// kubectl runs the kubectl built with the cluster against it.
func (k *kubeCluster) kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(k.bin, "kubectl"), append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// The test node's pod network (a CNI bridge, its own addresses in the
// pods' network namespaces, which the test makes) and its pause image.
const (
	kubePodCIDR   = "10.88.7.0/24"
	kubeBridge    = "gantrytest0"
	kubeNodeName  = "gantry-test-node"
	kubePauseTag  = "gantry-test/pause:v1"
	kubeCNIPlugin = "/usr/lib/cni" // Debian's containernetworking-plugins
	// kubeletFixedDir holds the device plugins' socket at a path the
	// kubelet does not let one move (pluginapi.DevicePluginPath).
	kubeletFixedDir = "/var/lib/kubelet"
)

// kubeNode is the cluster's one node: Debian's containerd (its CRI, on a
// socket of its own), the kubelet, kube-proxy, and the controller manager
// and scheduler that turn a Deployment into a pod on it.
type kubeNode struct {
	k          *kubeCluster
	containerd string // its socket
	ids        []string
}

// stopPods runs first when the test ends, while the node still runs: the
// pods go the kubelet's way (their network torn down by the CNI plugins),
// what is left is killed, and the containers' IDs are kept for teardown.
func (n *kubeNode) stopPods() {
	n.k.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=true", "--timeout=60s")
	ctr := func(args ...string) []string {
		out, _ := exec.Command("ctr", append([]string{"--address", n.containerd, "-n", "k8s.io"}, args...)...).Output()
		return strings.Fields(string(out))
	}
	n.ids = ctr("containers", "ls", "-q")
	for _, id := range ctr("tasks", "ls", "-q") {
		ctr("tasks", "kill", "-s", "SIGKILL", id)
	}
}

// startNode starts the node's processes; everything it set up on the
// machine (pods, mounts, the bridge, kube-proxy's rules) is taken down
// when the test ends.
func (k *kubeCluster) startNode() *kubeNode {
	t := k.t
	t.Helper()
	n := &kubeNode{k: k}
	dir := filepath.Join(k.dir, "node")
	os.MkdirAll(filepath.Join(dir, "cni", "net.d"), 0o755)
	// The kubelet makes its device plugins' folder there whatever its
	// root: remove it after the test unless it was there before.
	_, err := os.Stat(kubeletFixedDir)
	ownFixed := os.IsNotExist(err)
	t.Cleanup(func() {
		n.teardown(dir)
		if ownFixed {
			os.RemoveAll(kubeletFixedDir)
		}
	})

	// The pods' bridge, made before the CNI plugin takes it over, carries
	// the Services' virtual range too: a packet kube-proxy did not rewrite
	// to a pod stays on the test's own bridge and never leaves the machine
	// (this kernel has no dummy interfaces).
	sh(t, "ip", "link", "add", kubeBridge, "type", "bridge")
	sh(t, "ip", "link", "set", kubeBridge, "up")
	sh(t, "ip", "route", "add", kubeServiceCIDR, "dev", kubeBridge)

	os.WriteFile(filepath.Join(dir, "cni", "net.d", "10-gantry-test.conflist"), []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0", "name": "gantry-test",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, kubeBridge, filepath.Join(dir, "cni", "ipam"), kubePodCIDR)), 0o644)

	n.containerd = filepath.Join(dir, "containerd.sock")
	os.WriteFile(filepath.Join(dir, "containerd.toml"), []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # this sandbox may not lower oom_score_adj (the pod sandbox asks for
  # -998): runc's child dies with "can't get final child's PID from pipe"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(dir, "containerd"), filepath.Join(dir, "containerd-state"), n.containerd, kubePauseTag,
		kubeCNIPlugin, filepath.Join(dir, "cni", "net.d"))), 0o644)
	k.daemonProcAt("containerd", "/usr/bin/containerd", "--config", filepath.Join(dir, "containerd.toml"))
	waitFile(t, n.containerd, 60*time.Second, func() string { return k.logTail("containerd") })

	admin := k.kubeconfig
	k.daemonProc("kube-controller-manager", "--kubeconfig", admin, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(testbin.FreePort(t)),
		"--service-account-private-key-file", filepath.Join(k.dir, "sa.key"),
		"--root-ca-file", filepath.Join(k.dir, "pki", "apiserver.crt"))
	k.daemonProc("kube-scheduler", "--kubeconfig", admin, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(testbin.FreePort(t)))

	kubeletDir := filepath.Join(dir, "kubelet")
	os.MkdirAll(kubeletDir, 0o755)
	os.WriteFile(filepath.Join(dir, "kubelet.yaml"), []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
localStorageCapacityIsolation: false
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: ""
serializeImagePulls: false
podLogsDir: %s
`, testbin.FreePort(t), testbin.FreePort(t), n.containerd, filepath.Join(dir, "pod-logs"))), 0o644)
	k.daemonProc("kubelet", "--kubeconfig", admin, "--config", filepath.Join(dir, "kubelet.yaml"),
		"--root-dir", kubeletDir, "--cert-dir", filepath.Join(dir, "kubelet-pki"), "--hostname-override", kubeNodeName)
	k.daemonProc("kube-proxy", "--kubeconfig", admin, "--hostname-override", kubeNodeName,
		"--proxy-mode", "iptables", "--cluster-cidr", kubePodCIDR,
		"--bind-address", "127.0.0.1", "--healthz-bind-address", "127.0.0.1:"+strconv.Itoa(testbin.FreePort(t)),
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(testbin.FreePort(t)),
		"--conntrack-max-per-core", "0", "--conntrack-min", "0")
	t.Cleanup(n.stopPods) // before the node's processes stop (cleanups run last first)
	return n
}

// importImage puts a `docker save` archive into the node's containerd,
// where the kubelet finds it (imagePullPolicy IfNotPresent: no pull).
func (n *kubeNode) importImage(archive []byte) {
	t := n.k.t
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, "ctr", "--address", n.containerd, "-n", "k8s.io", "images", "import", "--no-unpack=false", p)
}

// teardown, after the node's processes stopped, removes what they left on
// the machine: the containerd shims (they outlive containerd), libcni's
// results, kube-proxy's and the kubelet's rules, the mounts under dir, the
// bridge.
func (n *kubeNode) teardown(dir string) {
	if n.containerd != "" {
		// libcni keeps each attachment's result under /var/lib/cni/results
		for _, id := range n.ids {
			files, _ := filepath.Glob("/var/lib/cni/results/*-" + id + "-*")
			for _, f := range files {
				os.Remove(f)
			}
		}
		// the shims of our containerd, found by its socket in their argv
		for _, pid := range pidsWithArg(n.containerd) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	exec.Command(filepath.Join(n.k.bin, "kube-proxy"), "--cleanup").Run()
	dropKubeChains()
	unmountUnder(dir)
	exec.Command("ip", "link", "del", kubeBridge).Run()
}

// pidsWithArg lists the processes one of whose arguments contains s.
func pidsWithArg(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(b), s) && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder lazily unmounts every mount below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
			mounts = append(mounts, fields[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// sh runs a command the test needs, failing the test with its output.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string, timeout time.Duration, log func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear in %s; log:\n%s", path, timeout, log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dropKubeChains removes the iptables chains the kubelet made
// (KUBE-FIREWALL, which drops packets to 127.0.0.0/8 from other sources,
// and the KUBE-KUBELET-CANARY chains) and whatever kube-proxy --cleanup
// left: no other Kubernetes runs on this machine, and later tests must
// find the machine as it was.
func dropKubeChains() {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(ipt, "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) >= 4 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && slices.Contains(f, "-j") && strings.HasPrefix(f[len(f)-1], "KUBE-"):
					exec.Command(ipt, append([]string{"-t", table, "-D"}, f[1:]...)...).Run()
				case len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				}
			}
			for _, c := range chains {
				exec.Command(ipt, "-t", table, "-F", c).Run()
			}
			for _, c := range chains {
				exec.Command(ipt, "-t", table, "-X", c).Run()
			}
		}
	}
}

package config

import (
	"os"
	"sort"
	"strings"

	"github.com/gantryhq/gantry/internal/hfcache"
	"github.com/gantryhq/gantry/internal/lazyre"
)

// Kubernetes is what `gantry export kubernetes` needs to know about the
// cluster beyond the models themselves; gantry serve ignores it.
type Kubernetes struct {
	// Namespace the objects are written into (default "gantry").
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	// ModelsVolume is where the cluster holds what <root>/models holds on
	// this box: a PersistentVolumeClaim, or a folder on every GPU node
	// (default: host_path <root>/models, the same tree as here).
	ModelsVolume KubeVolume `yaml:"models_volume" json:"models_volume"`
	// HFCache is where the cluster holds what the Hugging Face cache's
	// hub folder (HF_HUB_CACHE) holds on this box, for models with path:
	// hf:… (default: host_path of this box's folder).
	HFCache KubeVolume `yaml:"hf_cache" json:"hf_cache"`
	// Secret is the Secret the ${env.X} values of the models come from,
	// key X (default "gantry-env"); export never writes the values.
	Secret string `yaml:"secret" json:"secret,omitempty"`
	// Gateway is the Gateway (Gateway API) the HTTPRoutes attach to
	// (default "inference-gateway", the name the Inference Extension's
	// guides use).
	Gateway string `yaml:"gateway" json:"gateway,omitempty"`
	// EndpointPicker is the image of each InferencePool's endpoint picker
	// (default DefaultEndpointPicker).
	EndpointPicker string `yaml:"endpoint_picker" json:"endpoint_picker,omitempty"`
	// NodeMemory is the GPU memory of one node, which the planner sizes
	// the engines' memory flags from (default memory.total when it is a
	// size; with neither, no memory fraction is passed).
	NodeMemory Size `yaml:"node_memory" json:"node_memory,omitempty"`
	// ShmSize caps the memory-backed /dev/shm of each engine (default
	// 16GiB, what gantry gives a container).
	ShmSize Size `yaml:"shm_size" json:"shm_size,omitempty"`
}

// KubeVolume is a volume of the cluster: a claim or a node's folder.
type KubeVolume struct {
	PVC      string `yaml:"pvc" json:"pvc,omitempty"`
	HostPath string `yaml:"host_path" json:"host_path,omitempty"`
}

// Kubernetes defaults.
const (
	DefaultKubeNamespace = "gantry"
	DefaultKubeSecret    = "gantry-env"
	DefaultKubeGateway   = "inference-gateway"
	// DefaultEndpointPicker is the endpoint picker of llm-d-router v0.10.0
	// (config/charts/routerlib/values.yaml names the image
	// ghcr.io/llm-d/llm-d-router-endpoint-picker): since Gateway API
	// Inference Extension v1.6.0 the reference picker lives there
	// (that release's README, "The Endpoint Picker (EPP) ... moved").
	DefaultEndpointPicker = "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0"
)

// Kube returns the kubernetes: section with its defaults filled in.
func (c *Config) Kube() Kubernetes {
	var k Kubernetes
	if c.Kubernetes != nil {
		k = *c.Kubernetes
	}
	if k.Namespace == "" {
		k.Namespace = DefaultKubeNamespace
	}
	if k.ModelsVolume.PVC == "" && k.ModelsVolume.HostPath == "" {
		k.ModelsVolume.HostPath = strings.TrimSuffix(c.Root, "/") + "/models"
	}
	k.ModelsVolume.HostPath = ExpandHome(k.ModelsVolume.HostPath)
	if k.HFCache.PVC == "" && k.HFCache.HostPath == "" {
		k.HFCache.HostPath = hfcache.Dir(os.Getenv)
	}
	k.HFCache.HostPath = ExpandHome(k.HFCache.HostPath)
	if k.Secret == "" {
		k.Secret = DefaultKubeSecret
	}
	if k.Gateway == "" {
		k.Gateway = DefaultKubeGateway
	}
	if k.EndpointPicker == "" {
		k.EndpointPicker = DefaultEndpointPicker
	}
	if k.NodeMemory == 0 && c.Memory.Total > 0 {
		k.NodeMemory = c.Memory.Total
	}
	if k.ShmSize == 0 {
		k.ShmSize = 16 << 30
	}
	return k
}

// dnsLabel is a Kubernetes object name of the strictest kind (RFC 1123
// label): namespaces and Services.
var dnsLabel = lazyre.New(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// DNSLabel reports whether s may name a namespace or a Service.
func DNSLabel(s string) bool { return len(s) <= 63 && dnsLabel.MatchString(s) }

// dnsSubdomain is a Kubernetes object name (RFC 1123 subdomain): Secrets,
// claims, Gateways.
var dnsSubdomain = lazyre.New(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// kubernetes checks the kubernetes: section.
func (v *validator) kubernetes() {
	k := v.c.Kubernetes
	if k == nil {
		return
	}
	at := func(key ...string) []string { return append([]string{"kubernetes"}, key...) }
	if k.Namespace != "" && !DNSLabel(k.Namespace) {
		v.add(at("namespace"), "%q is not a namespace name (lower-case letters, digits and -, at most 63)", k.Namespace)
	}
	for key, name := range map[string]string{"secret": k.Secret, "gateway": k.Gateway} {
		if name != "" && (len(name) > 253 || !dnsSubdomain.MatchString(name)) {
			v.add(at(key), "%q is not an object name (lower-case letters, digits, - and .)", name)
		}
	}
	for key, mv := range map[string]KubeVolume{"models_volume": k.ModelsVolume, "hf_cache": k.HFCache} {
		switch {
		case mv.PVC != "" && mv.HostPath != "":
			v.add(at(key), "set pvc or host_path, not both")
		case mv.PVC != "" && (len(mv.PVC) > 253 || !dnsSubdomain.MatchString(mv.PVC)):
			v.add(at(key, "pvc"), "%q is not a claim name (lower-case letters, digits, - and .)", mv.PVC)
		case mv.HostPath != "" && !strings.HasPrefix(ExpandHome(mv.HostPath), "/"):
			v.add(at(key, "host_path"), "%q: give an absolute path on the nodes", mv.HostPath)
		}
	}
	if k.NodeMemory < 0 || k.NodeMemory == SizeAuto {
		v.add(at("node_memory"), "want a size such as 128GiB (a node's GPU memory)")
	}
	if k.ShmSize < 0 || k.ShmSize == SizeAuto {
		v.add(at("shm_size"), "want a size such as 16GiB")
	}
}

// EnvTemplate returns the value at the key path as the file wrote it,
// when it names ${env.X} (ok false otherwise): export writes such values
// as references to a Secret, never the value itself.
func (c *Config) EnvTemplate(path ...string) (tmpl string, ok bool) {
	tmpl, ok = c.envRefs[strings.Join(path, ".")]
	return tmpl, ok && hasRealRef(tmpl)
}

// EnvTemplatePaths lists the key paths under prefix (dotted, e.g.
// "models.scout") whose values name ${env.X}, sorted.
func (c *Config) EnvTemplatePaths(prefix string) []string {
	var out []string
	for p, t := range c.envRefs {
		if (p == prefix || strings.HasPrefix(p, prefix+".")) && hasRealRef(t) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// hasRealRef reports whether t names at least one ${env.X} (not only
// escaped $${env.X}).
func hasRealRef(t string) bool {
	for _, m := range envRE.FindAllString(t, -1) {
		if !strings.HasPrefix(m, "$$") {
			return true
		}
	}
	return false
}

// MapEnvTemplate rewrites a template: each ${env.X} becomes ref(X), each
// escaped $${env.X} the literal ${env.X}; other text stays.
func MapEnvTemplate(tmpl string, ref func(name string) string) string {
	return envRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		if strings.HasPrefix(m, "$$") {
			return m[1:]
		}
		return ref(envRE.FindStringSubmatch(m)[1])
	})
}

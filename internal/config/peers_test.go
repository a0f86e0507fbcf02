package config

import (
	"strings"
	"testing"
	"time"
)

func TestPeersParseWithDefaultsAndTheToken(t *testing.T) {
	t.Setenv("GANTRY_TEST_SPARK2", "sk-2")
	c, err := Parse("t.yaml", []byte(`
peers:
  spark2: {url: "http://spark2:4000/", token: "${env.GANTRY_TEST_SPARK2}"}
models:
  a: {engine: sim, memory: 1GiB, prefer: spark2}
  b: {engine: sim, memory: 1GiB, prefer: local}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Peers["spark2"]
	if p.Name != "spark2" || p.URL != "http://spark2:4000" || p.Token != "sk-2" ||
		p.HealthInterval.D() != 5*time.Second || p.ConnectTimeout.D() != 2*time.Second {
		t.Errorf("peer %+v", *p)
	}
	if c.Models["a"].PreferredPeer() != "spark2" || c.Models["b"].PreferredPeer() != "" {
		t.Errorf("prefer: a %q b %q", c.Models["a"].PreferredPeer(), c.Models["b"].PreferredPeer())
	}
}

func TestPeerProblems(t *testing.T) {
	cases := map[string]string{
		"peers: {spark2: {token: x}}":                              "peers.spark2: url is missing",
		"peers: {spark2: {url: spark2:4000}}":                      "is not a gateway URL",
		"peers: {spark2: {url: http://spark2:4000/v1}}":            "without a path such as /v1",
		"peers: {local: {url: http://spark2:4000}}":                `not "local"`,
		"peers: {me: {url: http://127.0.0.1:4000}}":                "this gantry's own listen address",
		"peers: {s: {url: http://s:1, health_interval: 1}}":        "duration",
		"models: {a: {engine: sim, memory: 1GiB, prefer: spark3}}": `models.a.prefer: "spark3" is neither "local" nor a peer (no peers are configured)`,
	}
	for in, want := range cases {
		_, err := Parse("t.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", in, err, want)
		}
	}
}

func TestNodes(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
peers: {b: {url: "http://10.0.0.2:4000"}}
models:
  lead: {engine: sglang, runtime: native, path: /m, memory: 1GiB, nodes: [local, b], dist_init_addr: "10.0.0.1:29500"}
  follow: {engine: sglang, runtime: native, path: /m, memory: 1GiB, nodes: [b, local], dist_init_addr: "10.0.0.2:29500"}
  one: {engine: sim, memory: 1GiB}
`))
	if err != nil {
		t.Fatal(err)
	}
	lead, follow, one := c.Models["lead"], c.Models["follow"], c.Models["one"]
	if !lead.MultiNode() || !lead.Leads() || lead.Follower() || lead.Rank() != 0 || lead.Leader() != "" {
		t.Errorf("lead: %+v", lead)
	}
	if !follow.Follower() || follow.Rank() != 1 || follow.Leader() != "b" || follow.Leads() {
		t.Errorf("follow: rank %d leader %q", follow.Rank(), follow.Leader())
	}
	if one.MultiNode() || !one.Leads() || one.Rank() != 0 {
		t.Errorf("one: %+v", one)
	}
	bad := map[string]string{
		"nodes: [local]": "one node is no group",
		"nodes: [local, c], dist_init_addr: \"h:1\"":                              `"c" is neither "local" nor a peer`,
		"nodes: [b, b], dist_init_addr: \"h:1\"":                                  "listed twice",
		"nodes: [local, b]":                                                       "needs rank 0's host:port",
		"nodes: [local, b], dist_init_addr: nohost":                               "is not host:port",
		"dist_init_addr: \"h:1\"":                                                 "only for a model with nodes",
		"nodes: [local, b], dist_init_addr: \"h:1\", runtime: docker, image: x:1": "runs natively",
	}
	for extra, want := range bad {
		rt := "runtime: native, "
		if strings.Contains(extra, "runtime:") {
			rt = ""
		}
		src := "peers: {b: {url: \"http://10.0.0.2:4000\"}}\nmodels:\n  m: {engine: sglang, " + rt + "path: /m, memory: 1GiB, " + extra + "}\n"
		if _, err := Parse("t.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", extra, err, want)
		}
	}
	src := "peers: {b: {url: \"http://10.0.0.2:4000\"}}\nmodels:\n  m: {engine: llamacpp, path: /m.gguf, memory: 1GiB, nodes: [local, b], dist_init_addr: \"h:1\"}\n"
	if _, err := Parse("t.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "engine llamacpp cannot span nodes") {
		t.Errorf("llamacpp across nodes: %v", err)
	}
}

// TestURLsShowNoPassword: a peer URL with user:password@ is refused (the
// token is how gantry authenticates to a peer), and no problem message
// — of a peer or a service, parseable or not — prints the password.
func TestURLsShowNoPassword(t *testing.T) {
	for in, want := range map[string]string{
		"peers: {spark2: {url: \"http://admin:hunter2@spark2:4000\"}}":    "peers.spark2.url: http://spark2:4000 carries a user name or password",
		"peers: {spark2: {url: \"http://admin:hunter2@spark2:4000/v1\"}}": "peers.spark2.url:",
		"peers: {spark2: {url: \"http://admin:hunter2@spark 2:4000\"}}":   "is not a gateway URL",
		"peers: {spark2: {url: \"http://:hunter2@spark2:4000\"}}":         "carries a user name or password",
		"services: {ui: {url: \"ftp://admin:hunter2@ui:8080\"}}":          "services.ui.url: \"ftp://ui:8080\" is not an http(s) URL",
		"services: {ui: {url: \"http://admin:hunter2@ui 1:8080\"}}":       "services.ui.url:",
	} {
		_, err := Parse("t.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: got %v, want %q and no password", in, err, want)
		}
	}
	for in, want := range map[string]string{
		"http://a:b@h:1/x?q=1": "http://h:1/x?q=1",
		"http://h:1":           "http://h:1",
		"http://a:b@h 1/x":     "http://h 1/x",
		"a:b@h:1":              "h:1",
		"":                     "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNamesAndImages: slot and profile names are held to the model
// names' rule (they accepted HTML, ../ and any unicode), and an image
// reference Docker would refuse is refused at validation.
func TestNamesAndImages(t *testing.T) {
	base := "models:\n  a: {engine: sim, memory: 1GiB, slot: SLOT}\n  b: {engine: sglang, runtime: docker, path: /m, memory: 1GiB, image: IMAGE}\nslots:\n  SLOT: {port: 30001}\nprofiles:\n  PROFILE: {always_on: [b]}\n"
	ok := strings.NewReplacer("SLOT", "private", "PROFILE", "hybrid", "IMAGE", "lmsysorg/sglang:v0.5.4")
	if _, err := Parse("t.yaml", []byte(ok.Replace(base))); err != nil {
		t.Fatalf("a valid config: %v", err)
	}
	for _, c := range []struct{ slot, profile, image, want string }{
		{`"<b>x</b>"`, "hybrid", "lmsysorg/sglang:v0.5.4", "slot name"},
		{`"../../etc"`, "hybrid", "lmsysorg/sglang:v0.5.4", "slot name"},
		{"privé", "hybrid", "lmsysorg/sglang:v0.5.4", "slot name"},
		{"private", `"<script>"`, "lmsysorg/sglang:v0.5.4", "profile name"},
		{"private", `"a/../b"`, "lmsysorg/sglang:v0.5.4", "profile name"},
		{"private", "hybrid", "lmsysorg/SGLang:v1", "not an image reference"},
		{"private", "hybrid", `"lmsysorg/sglang:v1 --privileged"`, "not an image reference"},
		{"private", "hybrid", `"lmsysorg/sglang:"`, "not an image reference"},
		{"private", "hybrid", `"lmsysorg/sglang@sha256:abc"`, "not an image reference"},
	} {
		in := strings.NewReplacer("SLOT", c.slot, "PROFILE", c.profile, "IMAGE", c.image).Replace(base)
		_, err := Parse("t.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("slot %s, profile %s, image %s: got %v, want %q", c.slot, c.profile, c.image, err, c.want)
		}
	}
	_, err := Parse("t.yaml", []byte("engines:\n  vllm: {image: \"Bad Image\"}\nmodels:\n  v: {engine: vllm, runtime: docker, path: /m, memory: 1GiB}\n"))
	if err == nil || !strings.Contains(err.Error(), "engines.vllm.image") || strings.Contains(err.Error(), "models.v.image") {
		t.Errorf("an engine's image: %v", err)
	}
}

func TestRedactArgv(t *testing.T) {
	got := RedactArgv([]string{"srv", "--api-key", "sk-1", "--hf-token=abc", "--port", "1"})
	want := "srv --api-key *** --hf-token=*** --port 1"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q", got)
	}
}

// TestCORSAnyOrigin: cors.allowed_origins ["*"] on a keyless gateway is
// every web page driving the box: refused; with keys, allowed with a word.
func TestCORSAnyOrigin(t *testing.T) {
	_, err := Parse("t.yaml", []byte("cors: {allowed_origins: [\"*\"]}\nmodels: {m: {engine: sim, memory: 1GiB}}\n"))
	if err == nil || !strings.Contains(err.Error(), "every web page you open") {
		t.Errorf("keyless: %v", err)
	}
	c, err := Parse("t.yaml", []byte("auth: {api_keys: [sk-a]}\ncors: {allowed_origins: [\"*\"]}\nmodels: {m: {engine: sim, memory: 1GiB}}\n"))
	if err != nil {
		t.Fatalf("with a key: %v", err)
	}
	probs := c.Validate()
	if len(probs) != 1 || !probs[0].Warning || !strings.Contains(probs[0].Msg, "any site") {
		t.Errorf("with a key: %v", probs)
	}
}

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

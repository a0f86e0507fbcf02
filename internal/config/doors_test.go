package config

import (
	"errors"
	"strings"
	"testing"
)

// The seed's addresses: gantry listens on :30000 and :30001, so the
// engines behind them get other ports, and the schema takes the keys.
func TestSeedAddressesMoveTheEngines(t *testing.T) {
	src := []byte(`
listen: 127.0.0.1:4000
auth: {api_keys: [sk-x]}
models:
  scout: {engine: sglang, path: /m/scout, memory: 60GiB, listen: 0.0.0.0:30000}
  qwen: {engine: sim, memory: 8GiB, slot: private}
  r1: {engine: sim, memory: 8GiB, slot: private}
slots:
  private: {listen: 0.0.0.0:30001, default: qwen, default_after: 30s}
`)
	c, err := Parse("g.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Models["scout"].Port; p == 30000 || p == 30001 || p == 0 {
		t.Errorf("scout's engine port %d: want an internal one", p)
	}
	sl := c.Slots["private"]
	if sl.Port == 30001 || sl.Port == 0 || !sl.PortAssigned || c.Models["qwen"].Port != sl.Port {
		t.Errorf("slot port %d (assigned %v), qwen %d", sl.Port, sl.PortAssigned, c.Models["qwen"].Port)
	}
	if !sl.Restores() || sl.DefaultAfter.D().Seconds() != 30 {
		t.Errorf("restore %v after %s", sl.Restores(), sl.DefaultAfter)
	}
	ds := c.Doors()
	if len(ds) != 2 || ds[0].Model != "scout" || ds[1].Slot != "private" || ds[1].Key != "slots.private.listen" {
		t.Errorf("doors %+v", ds)
	}
	if err := compileSchema(t).Validate(yamlToJSONValue(t, src)); err != nil {
		t.Errorf("schema: %v", err)
	}
	off, err := Parse("g.yaml", []byte("models:\n  a: {engine: sim, memory: 1GiB, slot: s}\nslots:\n  s: {port: 30001, default: a, restore_default: false}\n"))
	if err != nil || off.Slots["s"].Restores() {
		t.Errorf("restore_default: false: %v %v", err, off.Slots["s"].Restores())
	}
}

func TestDoorProblems(t *testing.T) {
	cases := []struct{ src, want string }{
		{"models:\n  a: {engine: sim, memory: 1GiB, listen: 0.0.0.0:30000}\n",
			"models.a.listen: 0.0.0.0:30000 accepts connections from other machines but auth.api_keys is empty"},
		{"models:\n  a: {engine: sim, memory: 1GiB, listen: nonsense}\n",
			`models.a.listen: "nonsense" is not host:port`},
		{"models:\n  a: {engine: sim, memory: 1GiB, listen: 127.0.0.1:30000, port: 30000}\n",
			"models.a.port: 30000 is also used by models.a.listen"},
		{"listen: 127.0.0.1:4000\nmodels:\n  a: {engine: sim, memory: 1GiB, listen: 127.0.0.1:4000}\n",
			"models.a.listen: 4000 is also used by listen (the gateway)"},
		{"models:\n  a: {engine: sim, memory: 1GiB, slot: s}\nslots:\n  s: {default: a}\n",
			"slots.s.port: a slot needs a port from 1 to 65535 (or a listen"},
		{"models:\n  a: {engine: sim, memory: 1GiB, slot: s}\nslots:\n  s: {port: 30001, default: a, default_after: -1s}\n",
			"slots.s.default_after: must not be negative"},
	}
	for _, c := range cases {
		_, err := Parse("g.yaml", []byte(c.src))
		var probs Problems
		if !errors.As(err, &probs) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n got %v\nwant %q", c.src, err, c.want)
		}
	}
}

package config

import (
	"net/url"
	"strings"
	"time"
)

// Peer is another gantry (a second box) under peers.<name>: its models are
// listed and served through this one. Name is the key it is listed under.
type Peer struct {
	Name string `yaml:"-" json:"name"`
	// URL is the peer's gateway, e.g. http://spark2:4000.
	URL string `yaml:"url" json:"url"`
	// Token is one of the peer's auth.api_keys ("" when it has none).
	Token string `yaml:"token" json:"-"`
	// HealthInterval is how often the peer is checked (default 5s);
	// ConnectTimeout bounds a connection to it and a check (default 2s).
	HealthInterval Duration `yaml:"health_interval" json:"health_interval"`
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
}

// Local is the name a model's prefer: gives this gantry.
const Local = "local"

// Peer defaults.
const (
	defaultPeerInterval = Duration(5 * time.Second)
	defaultPeerConnect  = Duration(2 * time.Second)
)

// applyPeerDefaults names every peer and fills its timings.
func (c *Config) applyPeerDefaults() {
	for name, p := range c.Peers {
		if p == nil {
			p = &Peer{}
			c.Peers[name] = p
		}
		p.Name = name
		p.URL = strings.TrimRight(p.URL, "/")
		if p.HealthInterval == 0 {
			p.HealthInterval = defaultPeerInterval
		}
		if p.ConnectTimeout == 0 {
			p.ConnectTimeout = defaultPeerConnect
		}
	}
}

// PeerNames are the peers' names in order.
func (c *Config) PeerNames() []string { return sortedKeys(c.Peers) }

// peers checks peers: and every model's prefer:.
func (v *validator) peers() {
	c := v.c
	for _, name := range sortedKeys(c.Peers) {
		p := c.Peers[name]
		at := func(k string) []string { return []string{"peers", name, k} }
		if !validName(name) || name == Local {
			v.add([]string{"peers", name}, "peer name %q: use letters, digits and . _ - : only, and not %q (it names this gantry)", name, Local)
		}
		u, err := url.Parse(p.URL)
		shown := RedactURL(p.URL)
		switch {
		case p.URL == "":
			v.add([]string{"peers", name}, "url is missing (the peer's gateway, e.g. http://spark2:4000)")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.add(at("url"), "%q is not a gateway URL (write it like http://spark2:4000)", shown)
		case u.User != nil:
			v.add(at("url"), "%s carries a user name or password (user:…@): remove it; gantry authenticates to a peer with peers.%s.token, and a URL's password would show in errors and status", shown, name)
		case u.Path != "" && u.Path != "/":
			v.add(at("url"), "%q: give the gateway's root, without a path such as /v1", shown)
		}
		if p.HealthInterval < 0 || p.ConnectTimeout < 0 {
			v.add([]string{"peers", name}, "health_interval and connect_timeout must be positive")
		}
		if p.URL != "" && err == nil && u.Host == c.Listen {
			v.add(at("url"), "%q is this gantry's own listen address: a peer is another box", RedactURL(p.URL))
		}
	}
	for _, name := range sortedKeys(c.Models) {
		m := c.Models[name]
		if m.Prefer == "" || m.Prefer == Local {
			continue
		}
		if _, ok := c.Peers[m.Prefer]; !ok {
			v.add([]string{"models", name, "prefer"}, "%q is neither %q nor a peer (%s)", m.Prefer, Local, peerList(c))
		}
	}
}

func peerList(c *Config) string {
	if len(c.Peers) == 0 {
		return "no peers are configured"
	}
	return "peers: " + strings.Join(sortedKeys(c.Peers), ", ")
}

// PreferredPeer is the peer a model prefers to run on, "" for this gantry.
func (m *Model) PreferredPeer() string {
	if m.Prefer == Local {
		return ""
	}
	return m.Prefer
}

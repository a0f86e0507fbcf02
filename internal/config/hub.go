package config

import (
	"net/url"
	"strings"
)

// Hub names the Hugging Face Hub (or a mirror, a company proxy that
// speaks its API) `gantry fit` and `gantry get` read models from.
type Hub struct {
	// Endpoint is its address; empty: $HF_ENDPOINT, else
	// https://huggingface.co.
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	// Token reads gated and private repositories; empty: $HF_TOKEN, else
	// the token `hf auth login` saved.
	Token string `yaml:"token" json:"-"`
}

// hub checks hub.endpoint: an http(s) address without credentials in it
// (the token goes in hub.token, which is never logged).
func (v *validator) hub() {
	e := v.c.Hub.Endpoint
	if e == "" {
		return
	}
	at := []string{"hub", "endpoint"}
	u, err := url.Parse(e)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.add(at, "%q is not an http(s) address of a Hub, e.g. https://huggingface.co or http://mirror.lan:8080", e)
	case u.User != nil:
		v.add(at, "credentials belong in hub.token, not in the address")
	case u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Path, "/api/"):
		v.add(at, "write the Hub's base address (e.g. https://huggingface.co), not a route of it")
	}
}

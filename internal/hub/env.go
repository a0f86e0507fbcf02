// Package hub reads models from the Hugging Face Hub (or a mirror that
// speaks its API): a repository's files at one commit, with their sizes
// and digests, and any file's bytes through HTTP ranges. It follows what
// the official client does (huggingface_hub 2.4.0, the version ./test.sh
// pins; the paths below are in its wheel): the same routes, headers,
// redirect rule, environment variables and error codes.
package hub

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/gantryhq/gantry/internal/hfcache"
)

// DefaultEndpoint is the Hub itself.
const DefaultEndpoint = "https://huggingface.co"

// Env is what the environment says, read the way huggingface_hub reads
// it (constants.py): HF_ENDPOINT, HF_TOKEN, HF_TOKEN_PATH, HF_HOME,
// HF_HUB_CACHE, HF_HUB_OFFLINE.
type Env struct {
	Endpoint string // HF_ENDPOINT
	Token    string // HF_TOKEN, else the token file `hf auth login` wrote
	Offline  bool   // HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is true
	Cache    string // HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
}

// ReadEnv reads the environment through getenv (os.Getenv in gantry).
func ReadEnv(getenv func(string) string) Env {
	e := Env{Endpoint: strings.TrimRight(getenv("HF_ENDPOINT"), "/"), Token: getenv("HF_TOKEN"),
		Offline: isTrue(getenv("HF_HUB_OFFLINE")) || isTrue(getenv("TRANSFORMERS_OFFLINE")), Cache: hfcache.Dir(getenv)}
	if e.Token == "" {
		path := getenv("HF_TOKEN_PATH")
		if path == "" {
			path = filepath.Join(hfcache.Home(getenv), "token")
		}
		if b, err := os.ReadFile(path); err == nil {
			e.Token = strings.TrimSpace(string(b))
		}
	}
	return e
}

// isTrue is constants.py's _is_true: 1, ON, YES or TRUE in any case.
func isTrue(v string) bool {
	switch strings.ToUpper(v) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

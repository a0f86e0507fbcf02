package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/status"
)

// The model lists of Ollama's API, shaped as Ollama's own server answers
// them (api/types.go of ollama v0.17.4: ListModelResponse,
// ProcessModelResponse, ShowResponse, ModelDetails), so that Ollama's
// clients — its CLI first of all — read them: `ollama list` and `ollama ps`
// print Digest[:12] (cmd/cmd.go), and `ollama show` reads model_info's
// general.architecture, general.parameter_count and
// <architecture>.context_length.

// ollamaDetails is the "details" Ollama reports of a model.
type ollamaDetails struct {
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

// ollamaFacts is one model as Ollama's API describes it.
type ollamaFacts struct {
	digest   string
	modified time.Time
	details  ollamaDetails
	arch     string
	params   int64
	context  int64
}

// ollamaFactsOf describes m (its status ms) the way Ollama describes a
// model of its store.
func (g *Gateway) ollamaFactsOf(cfg *config.Config, m *config.Model, ms status.ModelStatus) ollamaFacts {
	arch := ms.ModelType
	if arch == "" {
		arch = m.Engine
	}
	d := ollamaDetails{Format: m.Engine, Family: arch, Families: []string{arch}, QuantizationLevel: ms.Quantization}
	if ms.Params > 0 {
		d.ParameterSize = paramSize(ms.Params)
	}
	return ollamaFacts{digest: ollamaDigest(m), modified: g.modifiedAt(cfg, m), details: d, arch: arch,
		params: ms.Params, context: ms.Context}
}

// ollamaDigest is a model's digest as Ollama writes one — 64 hex digits
// of a sha256 (manifest/manifest.go: hex.EncodeToString of the manifest's
// sha256) — of what the model is: its name, engine and files (or tag, or
// command). Stable while the config says the same; aliases share it, as
// Ollama's names of one manifest do.
func ollamaDigest(m *config.Model) string {
	h := sha256.New()
	for _, s := range append([]string{"gantry model", m.Name, m.Engine, m.Path, m.Model}, m.Command...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// modifiedAt is when the model last changed, as Ollama's modified_at (its
// manifest file's time): its files' time, else the config file's, else
// when this gantry started (the built-in demo).
func (g *Gateway) modifiedAt(cfg *config.Config, m *config.Model) time.Time {
	for _, p := range []string{cfg.ModelPath(m), cfg.File} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil {
			return st.ModTime().UTC()
		}
	}
	return g.started.UTC()
}

// paramSize writes a parameter count as Ollama's parameter_size: "8.0B",
// "1.4M".
func paramSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fK", float64(n)/1e3)
}

// modelInfo is Ollama's model_info: the keys clients read for the model's
// architecture, size and context window.
func (f ollamaFacts) modelInfo() map[string]any {
	info := map[string]any{"general.architecture": f.arch}
	if f.params > 0 {
		info["general.parameter_count"] = f.params
	}
	if f.context > 0 {
		info[f.arch+".context_length"] = f.context
	}
	return info
}

func (g *Gateway) ollamaEntries(r *http.Request, only func(status.ModelStatus) bool) []map[string]any {
	cfg := g.sched.Config()
	key := auth.From(r.Context())
	out := []map[string]any{}
	for _, ms := range g.sched.Status().Models {
		m := cfg.Models[ms.Name]
		if m == nil || (only != nil && !only(ms)) {
			continue
		}
		f := g.ollamaFactsOf(cfg, m, ms)
		for _, name := range append([]string{ms.Name}, ms.Aliases...) {
			if !g.sees(key, name) {
				continue // a restricted key lists only its models
			}
			e := map[string]any{"name": name, "model": name, "size": ms.MemoryBytes, "digest": f.digest,
				"details": f.details, "modified_at": f.modified.Format(time.RFC3339Nano)}
			if f.context > 0 {
				e["context_length"] = f.context
			}
			out = append(out, e)
		}
	}
	return out
}

func (g *Gateway) ollamaTags(w http.ResponseWriter, r *http.Request) {
	entries := g.ollamaEntries(r, nil)
	for _, e := range entries {
		delete(e, "context_length") // /api/ps's, not /api/tags'
	}
	writeJSON(w, map[string]any{"models": entries})
}

func (g *Gateway) ollamaPS(w http.ResponseWriter, r *http.Request) {
	entries := g.ollamaEntries(r, func(m status.ModelStatus) bool { return m.State == status.Ready })
	for _, e := range entries {
		e["size_vram"] = e["size"]
		e["expires_at"] = time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	}
	writeJSON(w, map[string]any{"models": entries})
}

func (g *Gateway) ollamaShow(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
		Name  string `json:"name"`
	}
	json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req) //nolint:errcheck // an empty name is answered below
	name := req.Model
	if name == "" {
		name = req.Name
	}
	target, _ := g.resolvePreset(name)
	cfg := g.sched.Config()
	m := cfg.Resolve(target)
	if m == nil || !g.sees(auth.From(r.Context()), name) {
		ollamaError(w, http.StatusNotFound, "model_not_found", fmt.Sprintf("model %s not found%s; gantry serves %s", quote(name), g.didYouMean(r, name), g.knownNames(r)))
		return
	}
	caps := []string{"completion", "tools"}
	if g.sched.IsEmbedding(m.Name) {
		caps = []string{"embedding"}
	}
	f := g.ollamaFactsOf(cfg, m, g.sched.Status().Model(m.Name))
	writeJSON(w, map[string]any{"modelfile": "# served by gantry (engine " + m.Engine + ")", "parameters": "", "template": "",
		"details": f.details, "model_info": f.modelInfo(), "capabilities": caps,
		"modified_at": f.modified.Format(time.RFC3339Nano)})
}

// managedPaths are Ollama's routes that change its store; gantry's models
// are its config's, and each refusal says what to do instead.
var managedPaths = map[string]string{
	"POST /api/pull":           "gantry pulls no models through Ollama's API: add the model to gantry's config (models:) and reload it (gantry get downloads a checkpoint)",
	"POST /api/push":           "gantry pushes no models",
	"POST /api/create":         "gantry creates no models through Ollama's API: add the model to gantry's config (models:) and reload it",
	"POST /api/copy":           "gantry copies no models: give the model another name with aliases: in gantry's config",
	"DELETE /api/delete":       "gantry deletes no models through Ollama's API: remove the model from gantry's config (models:) and reload it",
	"POST /api/blobs/{digest}": "gantry takes no blobs: add the model to gantry's config (models:)",
	"HEAD /api/blobs/{digest}": "gantry takes no blobs: add the model to gantry's config (models:)",
}

// managedRefusal answers a route of managedPaths.
func managedRefusal(pattern string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ollamaError(w, http.StatusForbidden, "managed_by_gantry", "models are managed by gantry: "+managedPaths[pattern])
	}
}

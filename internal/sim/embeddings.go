package sim

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
)

func (s *server) embeddings(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	if !s.o.Embed {
		writeErr(w, http.StatusNotFound, "invalid_request_error", "this model does not serve embeddings (start the sim with --embedding)")
		return
	}
	if s.notReady(w) {
		return
	}
	var req struct {
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
		Dimensions     int             `json:"dimensions"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
		return
	}
	inputs, tokens, err := embedInputs(req.Input)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	dims := s.o.Dims
	switch {
	case req.Dimensions < 0 || req.Dimensions > s.o.Dims:
		writeErr(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("dimensions must be from 1 to %d", s.o.Dims))
		return
	case req.Dimensions > 0:
		dims = req.Dimensions // a Matryoshka model's prefix, renormalised
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "encoding_format must be float or base64")
		return
	}
	s.running.Add(1)
	defer s.running.Add(-1)
	defer s.done()
	if !sleepCtx(r.Context(), s.o.TTFT) {
		return
	}
	data := make([]any, len(inputs))
	for i, in := range inputs {
		v := Vector(in, dims)
		var emb any = v
		if req.EncodingFormat == "base64" {
			// As OpenAI and vLLM send it: little-endian float32s, base64.
			b := make([]byte, 4*len(v))
			for k, f := range v {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(float32(f)))
			}
			emb = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "model": s.o.Model, "data": data,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
}

// embedInputs reads input as the OpenAI API allows it: a string, a list
// of strings, a list of token ids, or a list of lists of token ids (which
// the sim embeds as their decimal text).
func embedInputs(raw json.RawMessage) (inputs []string, tokens int, err error) {
	var one string
	var many []string
	var ids []int
	var idLists [][]int
	switch {
	case json.Unmarshal(raw, &one) == nil:
		inputs = []string{one}
	case json.Unmarshal(raw, &many) == nil && len(many) > 0:
		inputs = many
	case json.Unmarshal(raw, &ids) == nil && len(ids) > 0:
		idLists = [][]int{ids}
	case json.Unmarshal(raw, &idLists) == nil && len(idLists) > 0:
	default:
		return nil, 0, errors.New("input must be a string, a list of strings, or token ids")
	}
	for _, l := range idLists {
		inputs = append(inputs, fmt.Sprint(l))
		tokens += len(l)
	}
	if idLists == nil {
		for _, in := range inputs {
			tokens += len(strings.Fields(in))
		}
	}
	return inputs, tokens, nil
}

func (s *server) rerank(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	if s.notReady(w) {
		return
	}
	var req struct {
		Query     string   `json:"query"`
		Documents []string `json:"documents"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil || len(req.Documents) == 0 {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "want {\"query\": ..., \"documents\": [...]}")
		return
	}
	defer s.done()
	q := Vector(req.Query, 16)
	results := make([]any, len(req.Documents))
	for i, d := range req.Documents {
		v := Vector(d, 16)
		score := 0.0
		for j := range v {
			score += q[j] * v[j]
		}
		results[i] = map[string]any{"index": i, "relevance_score": score}
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": s.o.Model, "results": results})
}

// Vector is the sim's deterministic embedding of text: a unit vector of
// dims numbers seeded by the text's hash, so equal inputs embed equally.
func Vector(text string, dims int) []float64 {
	h := fnv.New64a()
	h.Write([]byte(text))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x9e3779b97f4a7c15))
	v := make([]float64, dims)
	var norm float64
	for i := range v {
		v[i] = rng.NormFloat64()
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] = math.Round(v[i]/norm*1e6) / 1e6
	}
	return v
}

// tokenize answers vLLM's POST /tokenize ({"prompt"} or {"messages"}): the
// sim's tokens are words. Only the flavors whose engine has it (vLLM).
func (s *server) tokenize(w http.ResponseWriter, r *http.Request) {
	if !imitation(s.o.Flavor).Tokenize {
		http.NotFound(w, r)
		return
	}
	if s.notReady(w) {
		return
	}
	var req struct {
		Prompt   string          `json:"prompt"`
		Messages json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
		return
	}
	n := len(strings.Fields(req.Prompt + string(req.Messages)))
	tokens := make([]int, n)
	for i := range tokens {
		tokens[i] = 100 + i
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": n, "max_model_len": 32768, "tokens": tokens})
}

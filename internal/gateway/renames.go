package gateway

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/gantryhq/gantry/internal/engine"
)

// renameEdits adds to edits those that rename, at the top level of body,
// each parameter the engine reads under another name (engine.Rename):
// Ollama's OpenAI layer limits an answer by max_tokens alone, so the
// max_completion_tokens OpenAI's SDKs and LangChain send would let it run
// to the end of the context. A body that sets the other name itself is
// left as it is (the engine reads that one). Only the key is replaced —
// the value stays as the client wrote it — and the edits stay in body
// order. body's syntax has been checked (topFields).
func renameEdits(edits []edit, body []byte, renames []engine.Rename) []edit {
	n := len(edits)
	for _, rn := range renames {
		from, found, other := topKey(body, rn.From, rn.To)
		if found && !other {
			edits = append(edits, edit{from[0], from[1], []byte(`"` + rn.To + `"`)}) // a parameter's name: no escapes
		}
	}
	if len(edits) > n {
		slices.SortStableFunc(edits, func(a, b edit) int { return a.at - b.at })
	}
	return edits
}

// topKey finds the top-level key name in body (escaped or not): the byte
// range of its token, quotes included; isOther reports whether the top
// level also has a key that a JSON decoder may take for other (Go's
// encoding/json, as Ollama's, matches keys in any case).
func topKey(body []byte, name, other string) (at [2]int, found, isOther bool) {
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return at, false, false
	}
	for {
		s.ws()
		if s.eat('}') {
			return at, found, isOther
		}
		ks, ke, esc, err := s.str()
		if err != nil {
			return at, found, isOther
		}
		k := body[ks+1 : ke-1]
		if esc { // rare: the key as a decoder reads it
			var u string
			json.Unmarshal(body[ks:ke], &u) //nolint:errcheck // the syntax was checked
			k = []byte(u)
		}
		switch {
		case string(k) == name:
			at, found = [2]int{ks, ke}, true
		case len(k) == len(other) && strings.EqualFold(string(k), other):
			isOther = true
		}
		s.ws()
		s.eat(':')
		s.ws()
		if s.value(0) != nil {
			return at, found, isOther
		}
		s.ws()
		s.eat(',')
	}
}

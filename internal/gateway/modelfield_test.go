package gateway

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestModelField(t *testing.T) {
	cases := []struct {
		body  string
		model string
		found bool
		bad   bool
	}{
		{`{"model":"scout","messages":[]}`, "scout", true, false},
		{`  {"messages":[{"role":"user","content":"x \"model\": no"}], "model" : "q"}  `, "q", true, false},
		{`{"model":"a","model":"b"}`, "", false, true},
		{`{"model":"a","Model":"b"}`, "", false, true},
		{`{"MODEL":"b"}`, "", false, true},
		{`{"mod\u0065l":"esc"}`, "", false, true},
		{`{"\u004dodel":"b","model":"a"}`, "", false, true},
		{`{"models":"x","modes":1,"model":"a"}`, "a", true, false},
		{`{"model":"sch\u00f6n\n"}`, "schön\n", true, false},
		{`{"messages":[1,2.5e-3,-0,true,false,null,{"a":{}}]}`, "", false, false},
		{`{}`, "", false, false},
		{`{"model":42}`, "", false, true},
		{`{"model":"a",}`, "", false, true},
		{`{"model":"a"} x`, "", false, true},
		{`["model"]`, "", false, true},
		{`{"model":"a","x":01}`, "", false, true},
		{`{"model":"a","x":"\q"}`, "", false, true},
		{`{"model":"a","x":tru}`, "", false, true},
		{"{\"model\":\"a\x01\"}", "", false, true},
		{`{"model":"a"`, "", false, true},
		{``, "", false, true},
		{strings.Repeat("[", 10000), "", false, true},
		{`{"x":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, "", false, true},
	}
	for _, c := range cases {
		m, s, e, found, err := ModelField([]byte(c.body))
		if (err != nil) != c.bad || m != c.model || found != c.found {
			t.Errorf("%.60q: got %q found=%v err=%v", c.body, m, found, err)
			continue
		}
		if found {
			var back string
			if err := json.Unmarshal([]byte(c.body[s:e]), &back); err != nil || back != c.model {
				t.Errorf("%q: range [%d,%d) = %q", c.body, s, e, c.body[s:e])
			}
		}
	}
}

func TestReplaceModel(t *testing.T) {
	body := []byte(`{"model":"default","stream":true}`)
	_, s, e, _, _ := ModelField(body)
	out := ReplaceModel(body, s, e, "scout")
	if string(out) != `{"model":"scout","stream":true}` {
		t.Errorf("got %s", out)
	}
}

// FuzzModelField checks the scanner against two other readers of the same
// body — Go's encoding/json (keys in any case, the last one wins) and the
// Python-style reading most engines use (the exact key, the last one
// wins): whenever gantry accepts a body, all three read the same model;
// otherwise gantry refuses it. It never panics, and accepts exactly the
// JSON objects.
func FuzzModelField(f *testing.F) {
	for _, s := range []string{`{"model":"a"}`, `{"model":"a","messages":[{"role":"user","content":"hi"}]}`,
		`{"x":[1,2,{"y":null}],"model":"\u0041"}`, `{"model":1}`, `[]`, `{"a":"b"`,
		`{"model":"a","Model":"b"}`, `{"\u006dodel":"a"}`, `{"model":"a","model":"b"}`, `{"MoDeL":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, s, e, found, err := ModelField(b)
		var py map[string]json.RawMessage // exact key, last wins
		stdErr := json.Unmarshal(b, &py)
		if stdErr == nil && py == nil {
			// JSON's null decodes into a map without an error, but a
			// body that is null is not an object: it must be refused.
			if err == nil {
				t.Fatalf("accepted null %q", b)
			}
			return
		}
		if stdErr != nil {
			if err == nil && json.Valid(b) {
				t.Fatalf("accepted a non-object %q", b)
			}
			if err == nil && !json.Valid(b) {
				t.Fatalf("accepted invalid JSON %q", b)
			}
			return
		}
		if errors.Is(err, ErrAmbiguousModel) {
			return // refused: gantry and the engine cannot disagree
		}
		raw, has := py["model"]
		var want string
		isStr := has && json.Unmarshal(raw, &want) == nil && len(raw) > 0 && raw[0] == '"'
		var goStruct struct {
			Model *string `json:"model"`
		}
		goErr := json.Unmarshal(b, &goStruct)
		switch {
		case has && !isStr:
			if err == nil {
				t.Fatalf("accepted a non-string model in %q", b)
			}
		case err != nil:
			// Refusing valid JSON is wrong but for a depth beyond maxDepth.
			if json.Valid(b) && !strings.Contains(err.Error(), "deeply") {
				t.Fatalf("refused valid JSON %q: %v", b, err)
			}
		case found != has || (found && m != want):
			t.Fatalf("%q: gantry read %q (found=%v), the exact-key reader %q (found=%v)", b, m, found, want, has)
		case goErr == nil && (goStruct.Model != nil) != found:
			t.Fatalf("%q: gantry found=%v, encoding/json found=%v", b, found, goStruct.Model != nil)
		case goErr == nil && found && *goStruct.Model != m:
			t.Fatalf("%q: gantry read %q, encoding/json %q", b, m, *goStruct.Model)
		case found && string(b[s:e]) != string(raw):
			t.Fatalf("%q: range %q, raw %q", b, b[s:e], raw)
		}
	})
}

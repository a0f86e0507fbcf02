package gateway

import (
	"encoding/json"
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
		{`{"model":"a","model":"b"}`, "b", true, false},
		{`{"mod\u0065l":"esc"}`, "esc", true, false},
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

// FuzzModelField checks the scanner against encoding/json: it never panics,
// it accepts exactly the JSON objects, and it finds the same model.
func FuzzModelField(f *testing.F) {
	for _, s := range []string{`{"model":"a"}`, `{"model":"a","messages":[{"role":"user","content":"hi"}]}`,
		`{"x":[1,2,{"y":null}],"model":"\u0041"}`, `{"model":1}`, `[]`, `{"a":"b"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, s, e, found, err := ModelField(b)
		var obj map[string]json.RawMessage
		stdErr := json.Unmarshal(b, &obj)
		if stdErr != nil {
			if err == nil && json.Valid(b) {
				t.Fatalf("accepted a non-object %q", b)
			}
			if err == nil && !json.Valid(b) {
				t.Fatalf("accepted invalid JSON %q", b)
			}
			return
		}
		raw, has := obj["model"]
		var want string
		isStr := has && json.Unmarshal(raw, &want) == nil && len(raw) > 0 && raw[0] == '"'
		switch {
		case has && !isStr:
			if err == nil {
				t.Fatalf("accepted a non-string model in %q", b)
			}
		case err != nil:
			// encoding/json is lenient where we are strict only on invalid
			// UTF-8 and duplicate keys; both are fine to refuse... but
			// valid JSON must not be refused otherwise.
			if json.Valid(b) {
				t.Fatalf("refused valid JSON %q: %v", b, err)
			}
		case found != has || (found && m != want):
			t.Fatalf("%q: got %q found=%v, want %q found=%v", b, m, found, want, has)
		case found && string(b[s:e]) != string(raw):
			t.Fatalf("%q: range %q, raw %q", b, b[s:e], raw)
		}
	})
}

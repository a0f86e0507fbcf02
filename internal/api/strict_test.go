package api

import (
	"strings"
	"testing"
)

func TestStrictJSON(t *testing.T) {
	type req struct {
		Model string `json:"model"`
	}
	for body, bad := range map[string]string{
		`{"model":"a"}`:                  "",
		` {"model":"a"} `:                "",
		`{}`:                             "",
		`{"model":"a"}{"model":"b"}`:     "data after",
		`{"Model":"a"}`:                  "unknown key",
		`{"model":"a","model":"b"}`:      "twice",
		`{"model":"a","extra":1}`:        "unknown key",
		`["model"]`:                      "object",
		`{"model":1}`:                    "cannot unmarshal",
		`{"model":"a"} trailing`:         "",
		`{"mod\u0065l":"a","model":"b"}`: "twice",
	} {
		var v req
		err := strictJSON([]byte(body), &v)
		switch {
		case bad == "" && err != nil && body != `{"model":"a"} trailing`:
			t.Errorf("%s: %v", body, err)
		case bad != "" && (err == nil || !strings.Contains(err.Error(), bad)):
			t.Errorf("%s: %v, want %q", body, err, bad)
		case body == `{"model":"a"} trailing` && err == nil:
			t.Errorf("%s accepted", body)
		}
	}
}

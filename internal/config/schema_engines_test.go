package config

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/gantryhq/gantry/internal/engine"
)

// TestSchemaNamesEveryEngine: the schema's two lists of engine names
// (models.*.engine and the keys of engines:) are the descriptors', in
// their order, so that an editor offers a new engine as soon as its file
// exists.
func TestSchemaNamesEveryEngine(t *testing.T) {
	var doc struct {
		Defs struct {
			Model struct {
				Properties struct {
					Engine struct {
						Enum []string `json:"enum"`
					} `json:"engine"`
				} `json:"properties"`
			} `json:"model"`
		} `json:"$defs"`
		Properties struct {
			Engines struct {
				PropertyNames struct {
					Enum []string `json:"enum"`
				} `json:"propertyNames"`
			} `json:"engines"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(Schema, &doc); err != nil {
		t.Fatal(err)
	}
	want := engine.Names()
	for where, got := range map[string][]string{
		"$defs.model.properties.engine.enum":    doc.Defs.Model.Properties.Engine.Enum,
		"properties.engines.propertyNames.enum": doc.Properties.Engines.PropertyNames.Enum,
	} {
		if !slices.Equal(got, want) {
			t.Errorf("internal/config/gantry.schema.json %s is %q; the engines are %q: write that list there", where, got, want)
		}
	}
}

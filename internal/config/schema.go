package config

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of the config file, for editors
// and for scripts that write configs. A test keeps it in step with the Go
// types.
//
//go:embed gantry.schema.json
var Schema []byte

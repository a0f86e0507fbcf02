package config

import (
	"fmt"
	"os"
	"path/filepath"
)

// demoYAML is served when no config file exists: three simulated models, so
// a new user sees gantry work before writing any config.
const demoYAML = `# gantry's built-in demo: simulated engines, no GPU needed.
listen: 127.0.0.1:4000
memory: {total: 48GiB, reserve: 8GiB}
defaults: {idle_timeout: 5m}
models:
  demo-chat:
    engine: sim
    mode: always-on
    aliases: [default]
    memory: 16GiB
    args: [--flavor, sglang, --load-time, 2s, --itl, 20ms]
  demo-fast:
    engine: sim
    memory: 8GiB
    args: [--flavor, vllm, --load-time, 1s, --itl, 5ms]
  demo-embed:
    engine: sim
    memory: 2GiB
    args: [--embedding, --load-time, 500ms]
`

// Demo returns the built-in demo config. Its root is a folder under the
// system's temporary directory, so trying gantry writes nothing into ~/ai.
func Demo() *Config {
	c, err := Parse("(built-in demo)", []byte(demoYAML))
	if err != nil {
		panic(fmt.Sprintf("built-in demo config is invalid: %v", err)) // a bug, caught by tests
	}
	c.Root = filepath.Join(os.TempDir(), fmt.Sprintf("gantry-demo-%d", os.Getuid()))
	c.File = ""
	return c
}

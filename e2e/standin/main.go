// Command standin is an engine stand-in for the container tests: one
// static binary, installed in FROM-scratch images under the names and
// paths the real images use (vllm, python3, llama-server, trtllm-serve,
// NVIDIA's entrypoint wrapper). It parses the flags its engine really takes
// — the ones gantry passes and a few more — and refuses what the real
// program refuses (an unknown flag, an extra positional argument, a
// repeated "serve"), with the engine's exit code; then it serves as
// `gantry sim` does, as the engine's flavour.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/internal/sim"
)

// held keeps what STANDIN_ALLOC_MIB allocated alive while the engine runs.
var held []byte

func main() {
	prog := filepath.Base(os.Args[0])
	args := os.Args[1:]
	fmt.Printf("standin: %s %q\n", prog, args)
	var o sim.Options
	var err error
	switch prog {
	case "nvidia_entrypoint.sh":
		// NVIDIA's wrapper prints its banner and execs "$@".
		fmt.Println("== NVIDIA CUDA (stand-in entrypoint) ==")
		if len(args) == 0 {
			fail(1, "nvidia_entrypoint.sh: nothing to run")
		}
		path := args[0]
		if !strings.Contains(path, "/") {
			path = lookPath(path)
		}
		err := syscall.Exec(path, args, os.Environ())
		fail(126, fmt.Sprintf("exec %s: %v", args[0], err))
	case "vllm":
		o, err = vllm(args)
	case "python3":
		o, err = sglang(args)
	case "llama-server":
		o, err = llamaServer(args)
	case "trtllm-serve":
		o, err = trtllm(args)
	default:
		fail(127, prog+": not an engine this stand-in knows")
	}
	if err != nil {
		os.Exit(2) // the message is out already
	}
	o.Host = "0.0.0.0"
	o.Tokens = 16
	o.Dims = 8
	o.LoadTime = 200 * time.Millisecond
	if v := os.Getenv("STANDIN_LOAD_TIME"); v != "" {
		o.LoadTime, _ = time.ParseDuration(v)
	}
	if v := os.Getenv("STANDIN_ITL"); v != "" {
		o.ITL, _ = time.ParseDuration(v)
	}
	if v := os.Getenv("STANDIN_ALLOC_MIB"); v != "" {
		// As a checkpoint loading into memory: touched, so it is resident.
		n, _ := strconv.Atoi(v)
		fmt.Printf("loading %d MiB of weights\n", n)
		held = make([]byte, n<<20)
		for i := 0; i < len(held); i += 4096 {
			held[i] = 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := sim.Run(ctx, o, os.Stdout); err != nil {
		fail(1, err.Error())
	}
}

func fail(code int, msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(code)
}

func lookPath(name string) string {
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	return name
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// flags parses args against the flags that take a value and those that do
// not; positional arguments are returned. unknown reports an argument the
// real program's parser rejects.
func flags(args []string, valued, bare map[string]bool, unknown func(string)) (map[string]string, []string) {
	got := map[string]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		switch {
		case valued[name]:
			if !hasVal {
				if i+1 >= len(args) {
					unknown(a + " (expected one argument)")
					return got, pos
				}
				i++
				val = args[i]
			}
			got[name] = val
		case bare[name]:
			got[name] = "true"
		default:
			unknown(a)
		}
	}
	return got, pos
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func port(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// vllm is `vllm serve MODEL [flags]` (argparse: "vllm: error:
// unrecognized arguments: …", exit 2).
func vllm(args []string) (sim.Options, error) {
	var bad []string
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...")
		return sim.Options{}, fmt.Errorf("no serve")
	}
	f, pos := flags(args[1:], set("--host", "--port", "--served-model-name", "--max-model-len", "--gpu-memory-utilization",
		"--kv-cache-memory-bytes", "--quantization", "--tensor-parallel-size", "--dtype", "--model"),
		set("--trust-remote-code", "--enforce-eager", "--enable-prefix-caching"), func(a string) { bad = append(bad, a) })
	if len(pos) > 1 {
		bad = append(bad, pos[1:]...) // vllm serve serve …: the image's entrypoint repeated
	}
	if len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "vllm: error: unrecognized arguments: %s\n", strings.Join(bad, " "))
		return sim.Options{}, fmt.Errorf("bad")
	}
	return sim.Options{Port: port(f["--port"], 8000), Model: f["--served-model-name"], Flavor: "vllm"}, nil
}

// sglang is `python3 -m sglang.launch_server [flags]`.
func sglang(args []string) (sim.Options, error) {
	if len(args) < 2 || args[0] != "-m" || args[1] != "sglang.launch_server" {
		fmt.Fprintf(os.Stderr, "python3: this stand-in runs only -m sglang.launch_server, not %q\n", args)
		return sim.Options{}, fmt.Errorf("not sglang")
	}
	var bad []string
	f, pos := flags(args[2:], set("--model-path", "--host", "--port", "--served-model-name", "--context-length",
		"--mem-fraction-static", "--max-total-tokens", "--quantization", "--tp"), set("--enable-metrics", "--trust-remote-code"),
		func(a string) { bad = append(bad, a) })
	bad = append(bad, pos...)
	if len(bad) > 0 || f["--model-path"] == "" {
		fmt.Fprintf(os.Stderr, "launch_server.py: error: unrecognized arguments: %s\n", strings.Join(bad, " "))
		return sim.Options{}, fmt.Errorf("bad")
	}
	return sim.Options{Port: port(f["--port"], 30000), Model: f["--served-model-name"], Flavor: "sglang"}, nil
}

// llamaServer is llama.cpp's llama-server ("error: invalid argument: …").
func llamaServer(args []string) (sim.Options, error) {
	var bad []string
	f, pos := flags(args, set("-m", "--model", "--host", "--port", "-c", "--ctx-size", "--alias", "-ngl", "--n-gpu-layers", "-np", "--parallel"),
		set("--metrics", "--jinja", "--no-webui"), func(a string) { bad = append(bad, a) })
	bad = append(bad, pos...)
	if len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "error: invalid argument: %s\n", bad[0])
		return sim.Options{}, fmt.Errorf("bad")
	}
	return sim.Options{Port: port(f["--port"], 8080), Model: f["--alias"], Flavor: "llamacpp"}, nil
}

// trtllm is `trtllm-serve MODEL [flags]` (click: "Error: No such option").
func trtllm(args []string) (sim.Options, error) {
	var bad []string
	f, pos := flags(args, set("--host", "--port", "--backend", "--served_model_name", "--max_seq_len", "--kv_cache_free_gpu_memory_fraction", "--tp_size"),
		set("--trust_remote_code"), func(a string) { bad = append(bad, a) })
	if len(pos) != 1 {
		bad = append(bad, pos...)
	}
	if len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "Error: No such option: %s\n", bad[0])
		return sim.Options{}, fmt.Errorf("bad")
	}
	return sim.Options{Port: port(f["--port"], 8000), Model: f["--served_model_name"], Flavor: "trtllm"}, nil
}

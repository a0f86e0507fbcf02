package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/hub/hubtest"
)

func init() {
	register(phase{name: "hub", section: "hub", order: 75, needs: hubNeeds, run: hubBench})
	addSection(section{id: "hub", order: 75, title: "Getting a model: downloads and fits",
		about: "A local stand-in of the Hugging Face Hub (internal/hub/hubtest, which the official client accepts) serves a " +
			"repository of one 2 GiB safetensors file and its config over loopback. `gantry get` and huggingface_hub's " +
			"`snapshot_download` (the version ./test.sh pins, plain HTTP: the stand-in offers no Xet) fetch it in turns in the same " +
			"run, each into an empty folder, each timed as a whole process (resolve, transfer, verification, placing); the " +
			"figure is the median of the rounds. gantry's peak RSS is its own high-water mark (VmHWM in /proc), read while it runs. `gantry fit` of " +
			"Qwen/Qwen3-8B (a 16 GB checkpoint of real headers in 4 shards) is timed the same way, its server warm."})
}

// hubNeeds is the official client's venv, which ./test.sh installs.
func hubNeeds(*env) error {
	_, err := os.Stat(hubPython())
	return err
}

func hubPython() string {
	if p := os.Getenv("GANTRY_HUB_PYTHON"); p != "" {
		return p
	}
	return filepath.Join(filepath.Dir(hubtest.HashCache()), "hubclient", "bin", "python")
}

// hubBench downloads the same repository with gantry and with
// huggingface_hub in turns, and times a fit.
func hubBench(e *env) error {
	s, err := hubtest.New(hubtest.Options{HashCache: hubtest.HashCache()})
	if err != nil {
		return err
	}
	defer s.Close()
	const size = 2 << 30
	head, _ := hubtest.SafetensorsHeader([]hubtest.Tensor{{Name: "w", DType: "BF16", Shape: []int64{size / 2 / 4096, 4096}}})
	big := hubtest.Sparse("model.safetensors", head, int64(len(head))+size, int64(len(head)))
	cfg := hubtest.Bytes("config.json", []byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","num_hidden_layers":1,"num_attention_heads":1,"hidden_size":4096,"max_position_embeddings":4096}`))
	if _, err := s.Push("bench/two-gib", big, cfg); err != nil {
		return err
	}
	scratch := filepath.Join(e.dir, "hub-scratch")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}
	if _, err := s.PushFixtures(hubtest.Fixtures{Configs: hubtest.Configs(), Scratch: scratch}); err != nil {
		return err
	}
	total := big.Size() + cfg.Size()
	dir := filepath.Join(e.dir, "hub")
	env := append(os.Environ(), "HF_ENDPOINT="+s.URL, "HF_HUB_DISABLE_TELEMETRY=1", "HF_HUB_DISABLE_PROGRESS_BARS=1", "HF_HOME="+filepath.Join(dir, "hfhome"))
	// Warm: the digests of the big file and of Qwen's shards (hashed
	// once), and the page cache of nothing (the server's bytes are zeros).
	if _, _, err := timed(exec.Command(e.bin, "fit", "bench/two-gib", "--json"), env); err != nil {
		return err
	}
	if _, _, err := timed(exec.Command(e.bin, "fit", hubtest.QwenRepo, "--json"), env); err != nil {
		return err
	}
	var gantry, official, peaks []float64
	for i := range rounds(3) {
		os.RemoveAll(dir)
		root := filepath.Join(dir, fmt.Sprintf("g%d", i))
		d, rss, err := timed(exec.Command(e.bin, "get", "bench/two-gib", "--root", root), env)
		if err != nil {
			return err
		}
		gantry, peaks = append(gantry, float64(total)/d.Seconds()/1e6), append(peaks, rss)
		os.RemoveAll(dir)
		py := `import sys; from huggingface_hub import snapshot_download; snapshot_download("bench/two-gib", cache_dir=sys.argv[1])`
		d, _, err = timed(exec.Command(hubPython(), "-c", py, filepath.Join(dir, fmt.Sprintf("h%d", i))), env)
		if err != nil {
			return err
		}
		official = append(official, float64(total)/d.Seconds()/1e6)
		if *verbose {
			fmt.Printf("round %d: gantry %.0f MB/s (%.1f MB RSS), huggingface_hub %.0f MB/s\n", i, gantry[i], rss, official[i])
		}
	}
	os.RemoveAll(dir)
	g, o, peak := median(gantry), median(official), maxOf(peaks)
	record("download of 2 GiB over loopback: gantry get", fmt.Sprintf("%.0f MB/s", g), "", nil)
	record("download of 2 GiB over loopback: huggingface_hub snapshot_download", fmt.Sprintf("%.0f MB/s", o), "", nil)
	record("gantry / huggingface_hub", fmt.Sprintf("%.2f×", g/o), "≥ 1.0×", yes(g >= o))
	record("gantry get's peak RSS during the 2 GiB download", fmt.Sprintf("%.1f MB", peak), "≤ 64 MB", yes(peak <= 64))
	var fits []float64
	for range rounds(5) {
		d, _, err := timed(exec.Command(e.bin, "fit", hubtest.QwenRepo, "--json"), env)
		if err != nil {
			return err
		}
		fits = append(fits, d.Seconds()*1000)
	}
	f := median(fits)
	record("gantry fit Qwen/Qwen3-8B (4 shards' headers by range, no weight byte)", fmt.Sprintf("%.0f ms", f), "≤ 1 s", yes(f <= 1000))
	return nil
}

// timed runs cmd to its end with env and returns its wall time and its
// peak RSS in MB.
func timed(cmd *exec.Cmd, env []string) (time.Duration, float64, error) {
	cmd.Env = env
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	// The peak is the child's own high-water mark (VmHWM), read while it
	// runs. getrusage's ru_maxrss is not: Go starts a child with a
	// CLONE_VM clone, and Linux carries the parent's high-water mark
	// across the exec into the child's, so a bench that had grown to
	// 286 MB in its stream phases reported that for a 19 MB get.
	done := make(chan struct{})
	peak := make(chan float64, 1)
	go func() {
		hwm := 0.0
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			hwm = max(hwm, procStatusMB(cmd.Process.Pid, "VmHWM"))
			select {
			case <-done:
				peak <- hwm
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	d := time.Since(began)
	close(done)
	rss := <-peak
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return d, rss, nil
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

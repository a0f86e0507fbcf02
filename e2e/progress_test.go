package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/client"
	"github.com/gantryhq/gantry/internal/progress"
	"github.com/gantryhq/gantry/internal/status"
)

// regexpPhases is a line of `gantry start` naming an engine's load phase.
var regexpPhases = regexp.MustCompile(`starting p: (loading weights|weights loaded|compiling|allocating KV cache|capturing CUDA graphs)`)

// TestLoadProgress: the sim printing copies of vLLM's load lines (shard
// bar, weights loaded, compile, KV cache, CUDA graph bar — re-typed from
// the vLLM issues internal/sim/progress.go cites, not vLLM's output) is
// seen loading phase by phase — in events, in `gantry start`'s output, in
// the model's status — and the next load, after a restart of gantry, is
// estimated from this one. TestRealVLLM sees the real vLLM's lines make a
// "loading weights" step (a CPU vLLM has no CUDA graph or GPU KV lines).
func TestLoadProgress(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
models:
  p: {engine: sim, memory: 2GiB, args: [--flavor, vllm, --progress, --load-time, 3s, --model, e2e-progress]}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var steps []status.Progress
	req, _ := http.NewRequestWithContext(ctx, "GET", d.url+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req) // the headers come once subscribed
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go client.ReadSSE(resp.Body, func(kind, data string) {
		var ev status.Event
		if kind == string(status.KindProgress) && json.Unmarshal([]byte(data), &ev) == nil && ev.Model == "p" && ev.Progress != nil {
			mu.Lock()
			steps = append(steps, *ev.Progress)
			mu.Unlock()
		}
	})

	out, code := d.gantry("start", "p")
	if code != 0 {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	t.Logf("gantry start:\n%s", out)
	if !strings.Contains(out, "p is ready") || !regexpPhases.MatchString(out) {
		t.Errorf("start showed no load phase:\n%s", out)
	}
	mu.Lock()
	got := append([]status.Progress(nil), steps...)
	mu.Unlock()
	var phases []string
	sawShards := false
	for _, s := range got {
		if len(phases) == 0 || phases[len(phases)-1] != s.Phase {
			phases = append(phases, s.Phase)
		}
		if s.Phase == progress.Weights && s.Total == 4 {
			sawShards = true
		}
		if s.LastLoadSeconds != 0 || s.Percent != -1 {
			t.Errorf("a first load has no estimate: %+v", s)
		}
	}
	want := []string{progress.Weights, progress.LoadedWhen, progress.Compiling, progress.KVCache, progress.Graphs}
	if strings.Join(phases, ",") != strings.Join(want, ",") || !sawShards {
		t.Errorf("progress events' phases %q, want %q (shards 4: %v)", phases, want, sawShards)
	}

	// The load time survives a restart of gantry and makes the estimate.
	if out, code := d.gantry("stop", "p"); code != 0 {
		t.Fatalf("stop: %s", out)
	}
	cancel()
	d.stop()
	d2 := d.again()
	cmd := d2.command("start", "p")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var m status.ModelStatus
		for _, x := range d2.status().Models {
			if x.Name == "p" {
				m = x
			}
		}
		if m.State == status.Starting && m.Progress != nil && m.Progress.LastLoadSeconds > 0 {
			if m.Progress.LastLoadSeconds < 2.5 || m.Progress.Percent < 0 || m.Progress.ETASeconds < 0 {
				t.Errorf("second load's estimate: %+v", *m.Progress)
			}
			return
		}
		if m.State == status.Ready {
			t.Fatalf("p was ready before its status showed an estimate")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no estimate while p loaded again")
}

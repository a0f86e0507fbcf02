package fit

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/gpu"
	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/hub/hubtest"
	"github.com/gantryhq/gantry/internal/inventory"
	"github.com/gantryhq/gantry/internal/plan"
	"github.com/gantryhq/gantry/internal/status"
)

func standIn(t *testing.T) *hubtest.Server {
	s, _ := hubtest.ForTest(t, "")
	return s
}

// gb10 is a DGX Spark as its gantry reports it: unified memory, SM121.
func gb10(budget, reserved int64, holders ...status.ModelStatus) status.Status {
	return status.Status{Models: holders, GPU: gpu.Facts{Unified: true, GPUs: []gpu.GPU{{Name: "NVIDIA GB10", ComputeCap: "12.1"}}},
		Memory: status.MemoryStatus{TotalBytes: budget + 8<<30, BudgetBytes: budget, ReservedBytes: reserved}}
}

// materialize writes the repository's selected files as a folder on disk,
// byte for byte (sparse: the shards' zeros cost nothing), for inspect.
func materialize(t *testing.T, s *hubtest.Server, c *hub.Client, r *Result) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range r.Selection.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		os.MkdirAll(filepath.Dir(p), 0o755)
		out, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		// The head (the header, or the whole small file) comes from the
		// Hub; the rest of a sparse shard is zeros by construction.
		n := f.Size
		if strings.HasSuffix(f.Path, ".safetensors") {
			n = 64 << 10
		}
		body, err := c.Open(context.Background(), r.Resolved, f.Path, 0, min(n, f.Size))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(out, body)
		body.Close()
		out.Truncate(f.Size)
		out.Close()
	}
	return dir
}

// TestFitIsInspect: fit reads the same figures through ranges as inspect
// reads from the same files on disk, and no weight byte is served; it
// takes well under a second on loopback.
func TestFitIsInspect(t *testing.T) {
	s := standIn(t)
	c := hub.New(s.URL, hubtest.GatedToken, hub.Env{})
	cfg := config.Demo()
	for _, repo := range []string{hubtest.QwenRepo, hubtest.OSSRepo, hubtest.LlamaRepo, hubtest.GGUFRepo} {
		s.ResetCounters()
		res, err := Run(context.Background(), cfg, c, Request{Ref: hub.Ref{Repo: repo, Revision: "main"}},
			[]Box{FromStatus("spark", gb10(112<<30, 0))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w := s.WeightsServed(); w != 0 {
			t.Errorf("%s: fit served %d weight bytes", repo, w)
		}
		// How long a fit takes is the bench's (BENCHMARKS.md, "Getting a
		// model"): under the whole suite's load a bound here failed at 10 s
		// for what takes 85 ms alone.
		t.Logf("%s: %d requests, %d bytes served", repo, s.Requests(), s.Served())
		dir := materialize(t, s, c, res)
		var local *inventory.Model
		if res.Format == "gguf" {
			local, err = inventory.Inspect(filepath.Join(dir, res.Selection.Files[len(res.Selection.Files)-1].Path))
		} else {
			local, err = inventory.Inspect(dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		remote := *res.Model
		remote.Name, remote.Path, local.Name, local.Path = "", "", "", ""
		if res.Format == "gguf" {
			remote.DiskBytes, remote.Files, local.DiskBytes, local.Files = 0, 0, 0, 0
		}
		if !reflect.DeepEqual(remote, *local) {
			t.Errorf("%s:\nfit     %+v\ninspect %+v", repo, remote, *local)
		}
		// The verdicts' reservations are the plan of the same files.
		for _, v := range res.Boxes[0].Verdicts {
			m := &config.Model{Name: "x", Engine: v.Engine, Path: dir, Runtime: config.DefaultRuntime(v.Engine)}
			p := plan.One(cfg, m, FromStatus("spark", gb10(112<<30, 0)).Plan, func(string) (*inventory.Model, error) { return local, nil })
			if p.Bytes != v.NeedsBytes || p.Context != v.Context {
				t.Errorf("%s %s: fit needs %d at %d, inspect's plan %d at %d", repo, v.Engine, v.NeedsBytes, v.Context, p.Bytes, p.Context)
			}
		}
	}
}

// TestVerdicts: fits in what is free, after evicting idle models, not
// now (always-on holders), only at a shorter context, not at all; the
// GB10 rules come with their fixes; a GGUF quantization is chosen by
// what fits.
func TestVerdicts(t *testing.T) {
	s := standIn(t)
	c := hub.New(s.URL, "", hub.Env{})
	cfg := config.Demo()
	ago := time.Now().Add(-time.Hour)
	idle := status.ModelStatus{Name: "old", State: status.Ready, MemoryBytes: 100 << 30, LastUsed: &ago}
	pinned := status.ModelStatus{Name: "scout", State: status.Ready, MemoryBytes: 90 << 30, AlwaysOn: true}
	run := func(req Request, boxes ...Box) *Result {
		t.Helper()
		res, err := Run(context.Background(), cfg, c, req, boxes, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	qwen := Request{Ref: hub.Ref{Repo: hubtest.QwenRepo, Revision: "main"}, Engine: engine.VLLM}
	res := run(qwen, FromStatus("free", gb10(112<<30, 0)), FromStatus("idle", gb10(112<<30, 100<<30, idle)),
		FromStatus("pinned", gb10(112<<30, 90<<30, pinned)), FromStatus("small", gb10(20<<30, 0)), FromStatus("tiny", gb10(8<<30, 0)),
		Box{Name: "down", Err: "not asked: connection refused"})
	want := []string{Fits, FitsEvicting, Busy, FitsShorter, NoFit}
	for i, w := range want {
		v := res.Boxes[i].Verdicts[0]
		if v.Verdict != w {
			t.Errorf("%s: %s (%s), want %s", res.Boxes[i].Name, v.Verdict, v.Words, w)
		}
		t.Logf("%s: %s", res.Boxes[i].Name, v.Words)
	}
	if v := res.Boxes[1].Verdicts[0]; !reflect.DeepEqual(v.Evict, []string{"old"}) {
		t.Errorf("evicts %v", v.Evict)
	}
	if v := res.Boxes[3].Verdicts[0]; v.MaxContext < 1024 || v.MaxContext >= 32768 || !strings.Contains(v.Words, "set context:") {
		t.Errorf("shorter: %+v", v)
	}
	if b := res.Boxes[5]; b.Error == "" || len(b.Verdicts) != 0 {
		t.Errorf("a peer not asked: %+v", b)
	}
	// gpt-oss is MXFP4: vLLM on SM121 gets the Marlin warning with its fix.
	res = run(Request{Ref: hub.Ref{Repo: hubtest.OSSRepo, Revision: "main"}}, FromStatus("spark", gb10(112<<30, 0)))
	// Its MXFP4 experts pack two values a byte: 20.9B parameters, as the
	// model card says (internal/inventory/testdata's FACTS.md).
	if res.Model.Params != 20_914_757_184 || res.Model.WeightBytes != 13_761_264_768 {
		t.Errorf("gpt-oss-20b: %d parameters, %d weight bytes", res.Model.Params, res.Model.WeightBytes)
	}
	found := false
	for _, v := range res.Boxes[0].Verdicts {
		for _, f := range v.Findings {
			found = found || v.Engine == engine.VLLM && f.Rule == "fp4-on-vllm-sm12x" && f.Fix != ""
		}
	}
	if !found {
		t.Errorf("no fp4-on-vllm-sm12x warning for gpt-oss on vLLM: %+v", res.Boxes[0].Verdicts)
	}
	// The GGUF repository: the larger quantization fits a roomy box, only
	// the smaller one a box of a few hundred KiB above the engine's
	// overhead.
	g := Request{Ref: hub.Ref{Repo: hubtest.GGUFRepo, Revision: "main"}}
	if res := run(g, FromStatus("spark", gb10(112<<30, 0))); res.Quant != "F16" {
		t.Errorf("roomy box: %s", res.Quant)
	}
	tight := gb10(overhead(t, engine.LlamaCpp)+150<<10, 0)
	if res := run(g, FromStatus("tight", tight)); res.Quant != "Q8_0" {
		t.Errorf("tight box: %s (%+v)", res.Quant, res.Boxes[0].Verdicts)
	}
}

// overhead is an engine's default overhead, from its descriptor.
func overhead(t *testing.T, name string) int64 {
	t.Helper()
	d, err := engine.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return d.Memory.Overhead
}

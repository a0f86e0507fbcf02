package sim

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// loadLines are what each engine prints while it loads, in order: its
// real lines (the sources are cited in internal/progress's tests), so
// gantry's progress reading is exercised end to end. A bar is a run of
// redraws joined by \r, as tqdm writes them.
var loadLines = map[string][]string{
	// vllm-project/vllm#38820, #46389
	"vllm": {
		bar("Loading safetensors checkpoint shards", 4, " Completed |"),
		"(Worker_TP0 pid=%[1]d) INFO [default_loader.py:384] Loading weights took %.2[2]f seconds",
		"(Worker_TP0 pid=%[1]d) INFO [backends.py:1128] Dynamo bytecode transform time: 0.10 s",
		"(EngineCore_DP0 pid=%[1]d) INFO [gpu_worker.py:436] Available KV cache memory: 1.00 GiB",
		bar("Capturing CUDA graphs (decode, FULL)", 4, "|████      |"),
		"(EngineCore_DP0 pid=%[1]d) INFO [gpu_model_runner.py:4999] Graph capturing finished in 1 secs, took 0.01 GiB",
	},
	// sgl-project/sglang#8081, #7547, #10747
	"sglang": {
		"[%[3]s] Load weight begin. avail mem=78.50 GB",
		bar("Loading safetensors checkpoint shards", 3, " Completed |"),
		"[%[3]s] Load weight end. type=LlamaForCausalLM, dtype=torch.bfloat16, avail mem=70.10 GB, mem usage=8.40 GB.",
		"[%[3]s] KV Cache is allocated. #tokens: 100000, K size: 1.00 GB, V size: 1.00 GB",
		"[%[3]s] Capture cuda graph begin. This can take up to several minutes. avail mem=60.00 GB",
		bar("Capturing batches (bs=8 avail_mem=1.71 GB)", 4, "|████      |"),
		"[%[3]s] Capture cuda graph end. Time elapsed: 1.00 s. mem usage=0.50 GB. avail mem=59.50 GB.",
	},
	// ggml-org/llama.cpp#18546, #11699
	"llamacpp": {
		"llama_model_loader: loaded meta data with 36 key-value pairs and 197 tensors from model.gguf (version GGUF V3 (latest))",
		"load_tensors: loading model tensors, this can take a while... (mmap = true)",
		"llama_context: constructing llama_context",
		"common_init_from_params: warming up the model with an empty run - please wait ... (--no-warmup to disable)",
	},
}

// bar is a tqdm bar's redraws from 0 to n of n.
func bar(desc string, n int, mid string) string {
	var b strings.Builder
	for i := 0; i <= n; i++ {
		if i > 0 {
			b.WriteByte('\r')
		}
		fmt.Fprintf(&b, "%s: %3d%%%s %d/%d [00:0%d<00:0%d, 1.00it/s]", desc, 100*i/n, mid, i, n, i, n-i)
	}
	return b.String()
}

// printLoad writes the flavor's load lines to out, spread evenly over the
// load time, until the load is over or ctx is done.
func printLoad(ctx context.Context, flavor string, load time.Duration, out io.Writer) {
	lines := loadLines[flavor]
	if len(lines) == 0 || load <= 0 {
		return
	}
	began := time.Now()
	gap := load / time.Duration(len(lines)+1)
	for _, l := range lines {
		parts := strings.Split(l, "\r")
		for i, part := range parts {
			if !sleepCtx(ctx, gap/time.Duration(len(parts))) {
				return
			}
			end := "\r"
			if i == len(parts)-1 {
				end = "\n"
			}
			if strings.Contains(part, "%[") {
				part = fmt.Sprintf(part, os.Getpid(), time.Since(began).Seconds(), time.Now().Format(time.DateTime))
			}
			io.WriteString(out, part+end) //nolint:errcheck // the log is best effort
		}
	}
}

// lockedWriter serializes the logger's writes and printLoad's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Package progress reads how far an engine's load has come from the lines
// it prints: tqdm bars (vLLM's and SGLang's checkpoint shards and CUDA
// graph capture), and the milestones each engine logs (weights loaded,
// torch.compile, KV cache allocated, llama.cpp's tensors and context,
// Ollama's "model load progress"). The milestones are each engine's own,
// in its descriptor (internal/engine, whose tests cite the real lines);
// this package reads them (Parser) and tracks a load (Tracker).
package progress

import (
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/lazyre"
)

// Phase names, shared by all engines.
const (
	Starting   = "starting"
	PageCache  = "freeing page cache"
	Pulling    = "pulling image"
	Weights    = "loading weights"
	Compiling  = "compiling"
	KVCache    = "allocating KV cache"
	Graphs     = "capturing CUDA graphs"
	Context    = "creating context"
	WarmingUp  = "warming up"
	ServerUp   = "starting server"
	LoadedWhen = "weights loaded"
)

// Step is one reading: the phase and, when the line says, how far in it.
type Step struct {
	Phase string `json:"phase"`
	// Done and Total count the phase's units (shards, graph shapes) when
	// the line gives them.
	Done  int `json:"done,omitempty"`
	Total int `json:"total,omitempty"`
	// Fraction of the phase, 0 to 1; -1 when the line gives none.
	Fraction float64 `json:"fraction"`
}

// tqdm is a tqdm bar: "<desc>: 56% Completed | 5/9 [00:13<00:11, 2.87s/it]"
// (vLLM's shard loader) or "<desc>:  61%|██████    | 41/67 [00:06<00:04]".
var tqdm = lazyre.New(`([A-Za-z][^:%]*?):\s+(\d{1,3})%(?: Completed)?\s*\|[^|]*?\|?\s*(\d+)/(\d+)`)

// Milestone is a line that marks a phase of an engine's load. Each
// engine's descriptor (internal/engine) lists its own, from the lines the
// engine really prints.
type Milestone struct {
	Pattern *lazyre.Regexp
	Phase   string
	// Fraction is the phase's fraction the line means (1: the phase is
	// over), or -1; a group named "f" gives it (0 to 1) from the line.
	Fraction float64
}

// Parser reads load progress from an engine's lines: tqdm bars (every
// engine's Python side draws them) and its milestones, the first that
// matches winning. The zero Parser reads bars only.
type Parser []Milestone

// Parse reads one line (a segment between carriage returns and newlines:
// tqdm redraws with \r) and returns the load step it shows.
func (p Parser) Parse(line string) (Step, bool) {
	if m := tqdm.FindStringSubmatch(line); m != nil {
		pct, _ := strconv.Atoi(m[2])
		done, _ := strconv.Atoi(m[3])
		total, _ := strconv.Atoi(m[4])
		return Step{Phase: phaseOf(m[1]), Done: done, Total: total, Fraction: float64(min(pct, 100)) / 100}, true
	}
	for _, ms := range p {
		m := ms.Pattern.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := Step{Phase: ms.Phase, Fraction: ms.Fraction}
		if i := ms.Pattern.SubexpIndex("f"); i > 0 {
			if f, err := strconv.ParseFloat(m[i], 64); err == nil && f >= 0 && f <= 1 {
				s.Fraction = f
			}
		}
		return s, true
	}
	return Step{}, false
}

// phaseOf names a tqdm bar's phase from its description.
func phaseOf(desc string) string {
	d := strings.ToLower(desc)
	switch {
	case strings.Contains(d, "checkpoint shards"), strings.Contains(d, "loading weights"), strings.Contains(d, "loading safetensors"):
		return Weights
	case strings.Contains(d, "capturing"), strings.Contains(d, "cuda graph"):
		return Graphs
	case strings.Contains(d, "compil"):
		return Compiling
	}
	return strings.TrimSpace(d)
}

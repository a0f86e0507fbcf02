package gpu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MemInfo is what /proc/meminfo says, in bytes. On a unified-memory box it
// is the GPU's memory too: CUDA's free memory there is about MemFree, the
// page cache (Cached) counting as used (vllm-project/vllm#48140), while
// MemAvailable counts it as reclaimable.
type MemInfo struct {
	Total     int64 `json:"mem_total_bytes"`
	Free      int64 `json:"mem_free_bytes"`
	Available int64 `json:"mem_available_bytes"`
	// Cached is the page cache (Cached + Buffers).
	Cached int64 `json:"page_cache_bytes"`
	Dirty  int64 `json:"dirty_bytes"`
}

// UnifiedCUDAShare is the most of MemTotal a CUDA program gets on a DGX
// Spark: free memory on a freshly booted GB10, headless, caches dropped,
// caps at 101.3–102.2 of 121.69 GiB across boots and drivers
// (MiaAI-Lab/GLM-5.3-Flash-EXL3-2x-DGX-Sparks#47), 0.84 of it. The rest is
// the OS, the firmware's display carve-out and the driver's own.
const UnifiedCUDAShare = 0.84

// Usable is what engines can allocate on a unified-memory box: what the
// kernel could hand out now (MemAvailable, page cache included) plus what
// gantry could free itself (give back: its own engines' memory), at most
// the share CUDA ever gets of the total.
func (m MemInfo) Usable(giveBack int64) int64 {
	return min(m.Available+giveBack, int64(float64(m.Total)*UnifiedCUDAShare))
}

// CUDAFree is what cudaMemGetInfo reports as free on a unified-memory box,
// where nvidia-smi says [N/A]: MemFree — the page cache counts as used.
func (m MemInfo) CUDAFree() int64 { return m.Free }

// ReadMemInfo reads /proc/meminfo.
func ReadMemInfo() (MemInfo, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return MemInfo{}, err
	}
	return ParseMemInfo(string(b))
}

// ParseMemInfo reads /proc/meminfo text; MemTotal must be there.
func ParseMemInfo(s string) (MemInfo, error) {
	var m MemInfo
	var buffers, cached int64
	seen := false
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "MemTotal":
			dst, seen = &m.Total, true
		case "MemFree":
			dst = &m.Free
		case "MemAvailable":
			dst = &m.Available
		case "Buffers":
			dst = &buffers
		case "Cached":
			dst = &cached
		case "Dirty":
			dst = &m.Dirty
		default:
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return m, fmt.Errorf("%s: no value", k)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", k, err)
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		*dst = n
	}
	if !seen {
		return m, errors.New("no MemTotal in /proc/meminfo")
	}
	m.Cached = buffers + cached
	return m, nil
}

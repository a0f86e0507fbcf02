// Package gpu reads the box's GPU facts from nvidia-smi. A value nvidia-smi
// cannot give ([N/A], Not Supported) is unknown — nil here — never 0: a
// DGX Spark's GB10 reports no memory at all because CPU and GPU share it,
// and its memory is then read from /proc/meminfo.
package gpu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// GPU is one device.
type GPU struct {
	Index       int      `json:"index"`
	Name        string   `json:"name"`
	UUID        string   `json:"uuid"`
	Driver      string   `json:"driver"`
	ComputeCap  string   `json:"compute_cap"`
	MemoryTotal *int64   `json:"memory_total_bytes"`
	MemoryUsed  *int64   `json:"memory_used_bytes"`
	MemoryFree  *int64   `json:"memory_free_bytes"`
	Utilization *float64 `json:"utilization_percent"`
	Temperature *float64 `json:"temperature_celsius"`
	Power       *float64 `json:"power_watts"`
	// Unified is true for a GPU that shares system memory (GB10).
	Unified bool `json:"unified_memory"`
}

// Proc is a process using a GPU.
type Proc struct {
	GPU  string `json:"gpu_uuid"`
	PID  int    `json:"pid"`
	Name string `json:"name"`
	Used *int64 `json:"used_bytes"`
}

// Facts is what gantry knows about the box's accelerators.
type Facts struct {
	GPUs  []GPU  `json:"gpus"`
	Procs []Proc `json:"processes"`
	// Unified is true when the GPUs share system memory.
	Unified bool `json:"unified_memory"`
	// TotalBytes is the memory engines share: GPU memory, system memory on
	// unified-memory boxes, or system memory when there is no GPU.
	TotalBytes int64 `json:"total_bytes"`
	// Source says where TotalBytes comes from.
	Source string `json:"source"`
	// Err is why nvidia-smi gave nothing ("" when it worked).
	Err string `json:"error,omitempty"`
	// Memory is /proc/meminfo as read (nil when it could not be).
	Memory *MemInfo `json:"meminfo,omitempty"`
}

// QueryFields are the --query-gpu fields ParseGPUs expects, in order.
const QueryFields = "index,name,uuid,driver_version,compute_cap,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,power.draw"

// AppFields are the --query-compute-apps fields ParseApps expects.
const AppFields = "gpu_uuid,pid,process_name,used_memory"

// unknown reports whether nvidia-smi could not give a value.
func unknown(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || strings.HasPrefix(s, "[") || strings.EqualFold(s, "N/A") || strings.Contains(s, "Not Supported")
}

func mib(s string) (*int64, error) {
	if unknown(s) {
		return nil, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not a number of MiB", s)
	}
	v := int64(f * (1 << 20))
	return &v, nil
}

func num(s string) (*float64, error) {
	if unknown(s) {
		return nil, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not a number", s)
	}
	return &f, nil
}

// ParseGPUs parses --query-gpu=QueryFields --format=csv,noheader,nounits.
func ParseGPUs(out string) ([]GPU, error) {
	var gpus []GPU
	sc := bufio.NewScanner(strings.NewReader(out))
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		f := strings.Split(sc.Text(), ",")
		if len(f) != 11 {
			return nil, fmt.Errorf("nvidia-smi line %d: %d fields, want 11: %q", line, len(f), sc.Text())
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi line %d: index %q", line, f[0])
		}
		g := GPU{Index: idx, Name: f[1], UUID: f[2], Driver: f[3], ComputeCap: f[4]}
		if unknown(g.ComputeCap) {
			g.ComputeCap = ""
		}
		var errs []error
		var e error
		g.MemoryTotal, e = mib(f[5])
		errs = append(errs, e)
		g.MemoryUsed, e = mib(f[6])
		errs = append(errs, e)
		g.MemoryFree, e = mib(f[7])
		errs = append(errs, e)
		g.Utilization, e = num(f[8])
		errs = append(errs, e)
		g.Temperature, e = num(f[9])
		errs = append(errs, e)
		g.Power, e = num(f[10])
		errs = append(errs, e)
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("nvidia-smi line %d: %w", line, err)
		}
		g.Unified = g.MemoryTotal == nil && (strings.Contains(g.Name, "GB10") || strings.HasPrefix(g.ComputeCap, "12."))
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// ParseApps parses --query-compute-apps=AppFields --format=csv,noheader,nounits.
func ParseApps(out string) ([]Proc, error) {
	var ps []Proc
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "No running") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 4 {
			return nil, fmt.Errorf("nvidia-smi compute apps: %q", line)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(f[1]))
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi compute apps: pid %q", f[1])
		}
		used, err := mib(f[len(f)-1])
		if err != nil {
			return nil, err
		}
		name := strings.TrimSpace(strings.Join(f[2:len(f)-1], ","))
		ps = append(ps, Proc{GPU: strings.TrimSpace(f[0]), PID: pid, Name: name, Used: used})
	}
	return ps, nil
}

// Runner runs nvidia-smi with args and returns its standard output.
type Runner func(ctx context.Context, args ...string) ([]byte, error)

// NvidiaSMI runs the real nvidia-smi, bounded to 10 s.
func NvidiaSMI(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nvidia-smi", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg := strings.TrimSpace(string(out) + " " + string(ee.Stderr))
			return nil, fmt.Errorf("nvidia-smi: %v: %s", err, msg)
		}
		return nil, err
	}
	return out, nil
}

// Detect asks nvidia-smi (through run) and /proc/meminfo (through
// sysMem) for the facts. It always answers: without a GPU, the facts say
// so and TotalBytes is the system memory. On a unified-memory box
// TotalBytes is MemTotal; what engines can really get is
// MemInfo.Usable (the scheduler's memory.total: auto).
func Detect(ctx context.Context, run Runner, sysMem func() (MemInfo, error)) Facts {
	f := Facts{}
	out, err := run(ctx, "--query-gpu="+QueryFields, "--format=csv,noheader,nounits")
	if err == nil {
		f.GPUs, err = ParseGPUs(string(out))
	}
	if err != nil {
		f.Err = err.Error()
	}
	if len(f.GPUs) > 0 {
		if apps, err := run(ctx, "--query-compute-apps="+AppFields, "--format=csv,noheader,nounits"); err == nil {
			f.Procs, _ = ParseApps(string(apps))
		}
	}
	var gpuTotal int64
	known := len(f.GPUs) > 0
	for _, g := range f.GPUs {
		f.Unified = f.Unified || g.Unified
		if g.MemoryTotal == nil {
			known = false
			continue
		}
		gpuTotal += *g.MemoryTotal
	}
	switch {
	case known && !f.Unified:
		f.TotalBytes, f.Source = gpuTotal, "nvidia-smi memory.total"
	default:
		mi, err := sysMem()
		if err != nil {
			f.Source = "unknown (" + err.Error() + ")"
			return f
		}
		f.Memory = &mi
		f.TotalBytes = mi.Total
		switch {
		case f.Unified:
			f.Source = "/proc/meminfo (unified memory: GPU and CPU share it)"
		case len(f.GPUs) > 0:
			f.Source = "/proc/meminfo (nvidia-smi reports no GPU memory)"
		default:
			f.Source = "/proc/meminfo (no GPU found)"
		}
	}
	return f
}

// SM returns the compute capability as a number (12.1 → 121), 0 if unknown.
func (g GPU) SM() int {
	maj, mn, ok := strings.Cut(g.ComputeCap, ".")
	if !ok {
		return 0
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(mn)
	if err1 != nil || err2 != nil {
		return 0
	}
	return a*10 + b
}

// Cached wraps fn so that it runs at most once per ttl; scrapes and the
// dashboard then do not fork nvidia-smi on every request.
func Cached(ttl time.Duration, fn func() Facts) func() Facts {
	var mu sync.Mutex
	var at time.Time
	var last Facts
	return func() Facts {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > ttl {
			last, at = fn(), time.Now()
		}
		return last
	}
}

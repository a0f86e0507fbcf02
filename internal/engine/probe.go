package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// Health is an engine's readiness rule for one model: Path answers 200
// once the model is ready. Before that a refused connection means the
// engine has not opened its port (vLLM, SGLang and trtllm-serve load
// before listening) and a 503 means it is at NotReady ("loading",
// "warming up": SGLang's warm-up, llama-server's "Loading model"). An
// empty Path is an engine that serves no HTTP (a headless rank): running
// is all it says, so it is ready.
type Health struct {
	Path     string
	NotReady string
}

// healthAt is the common rule: path, and "loading" while a 503 answers.
func healthAt(path string) Health { return Health{Path: path, NotReady: "loading"} }

// Readiness is the answer of one probe.
type Readiness struct {
	Ready bool
	// Phase says where a not-ready engine is: "not listening", "loading",
	// "warming up", "unhealthy".
	Phase string
	// Detail is what the engine said, trimmed, for the user.
	Detail string
}

// Probe asks the engine at base once whether it is ready, by its rule h.
func Probe(ctx context.Context, c *http.Client, base string, h Health) Readiness {
	if h.Path == "" {
		return Readiness{Ready: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+h.Path, nil)
	if err != nil {
		return Readiness{Phase: "unhealthy", Detail: err.Error()}
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return Readiness{Phase: "not listening", Detail: "connection refused (still loading)"}
		}
		return Readiness{Phase: "not listening", Detail: shortErr(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return Readiness{Ready: true, Phase: "ready"}
	}
	detail := fmt.Sprintf("%s %s", resp.Status, oneLine(string(body)))
	if resp.StatusCode == http.StatusServiceUnavailable {
		return Readiness{Phase: h.NotReady, Detail: strings.TrimSpace(detail)}
	}
	return Readiness{Phase: "unhealthy", Detail: strings.TrimSpace(detail)}
}

func shortErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Package testbin builds the gantry binary once per test process, so tests
// can run real `gantry sim` engines and real `gantry serve` daemons.
package testbin

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	once sync.Once
	path string
	err  error
)

// Gantry returns the path of a freshly built gantry binary.
func Gantry(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, e := os.MkdirTemp("", "gantry-testbin-")
		if e != nil {
			err = e
			return
		}
		path = filepath.Join(dir, "gantry")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/gantry")
		cmd.Dir = root
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("go build: %v\n%s", e, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreePortRange returns n consecutive TCP ports, all free a moment ago on
// 127.0.0.1, at a random place in 20000–29999, for a daemon's port_range:
// its engines then get ports no other gantry on the machine is likely to
// use (gantry's default range is the same for every gantry, so a benchmark
// or another suite running meanwhile used the same ports for models of the
// same names). Not in the kernel's ephemeral range (32768–60999): after a
// load test its even ports are full of client sockets in TIME_WAIT, on
// which a server cannot bind; and below Kubernetes' NodePorts (30000–).
func FreePortRange(t testing.TB, n int) (first, last int) {
	t.Helper()
	const lo, hi = 20000, 30000
	for try := 0; try < 100; try++ {
		first = lo + rand.IntN(hi-lo-n)
		var held []net.Listener
		for p := first; p < first+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				break
			}
			held = append(held, ln)
		}
		for _, ln := range held {
			ln.Close()
		}
		if len(held) == n {
			return first, first + n - 1
		}
	}
	t.Fatalf("no %d consecutive free ports in %d–%d", n, lo, hi-1)
	return 0, 0
}

// WaitHTTP polls url until it answers 200 or the timeout passes.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not answering 200 after %s (last error: %v)", url, timeout, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Cmdline is the argv of a running process as /proc shows it, nil when
// it is gone.
func Cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

package supervise

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
)

// portGrace is how long a start waits for its port to come free: a
// process gantry just stopped may take a moment to close its socket.
const portGrace = time.Second

// portFree checks, before an engine is launched, that nothing answers at
// its address yet. Something that does — an engine another gantry or a
// benchmark started, the system's own Ollama, a Kubernetes NodePort —
// would pass the readiness probe in the engine's place, and gantry would
// send the model's requests to it (its model, its answers) while its own
// engine fails to bind.
func (p *Process) portFree(ctx context.Context) error {
	u, err := url.Parse(p.launch.BaseURL)
	if err != nil || u.Port() == "" {
		return nil
	}
	deadline := time.Now().Add(portGrace)
	for {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		c, err := (&net.Dialer{}).DialContext(dctx, "tcp", u.Host)
		cancel()
		if err != nil {
			return nil // refused (or nothing reachable): free
		}
		c.Close()
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	port, _ := strconv.Atoi(u.Port())
	who := "another program"
	if pid := portHolder(port); pid > 0 {
		who = fmt.Sprintf("pid %d", pid)
		if argv := cmdline(pid); len(argv) > 0 {
			who += " (" + trimmed(strings.Join(config.RedactArgv(argv), " ")) + ")"
		}
	}
	return fmt.Errorf("port %d is taken: %s answers there, and its answers would pass for the engine's — stop it, or give the engine another port (%s)",
		port, who, portKey(p.model))
}

// portKey names the config key that sets a model's engine port.
func portKey(m *config.Model) string {
	switch d, _ := engine.Lookup(m.Engine); {
	case m.Slot != "":
		return "slots." + m.Slot + ".port"
	case d != nil && d.Shared != "":
		return "engines." + m.Engine + ".port"
	case m.PortAssigned:
		return "models." + m.Name + ".port, or port_range"
	}
	return "models." + m.Name + ".port"
}

// portHolder is the pid of a process that listens on port (TCP, IPv4 or
// IPv6), 0 when none is found: the listener may be in another network
// namespace (a container's), be a NAT rule, or belong to a process whose
// descriptors this user cannot read.
func portHolder(port int) int {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listeners(table, port, inodes)
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, fdDir := range procs {
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
			if err == nil && strings.HasPrefix(link, "socket:[") && inodes[strings.TrimSuffix(link[len("socket:["):], "]")] {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(fdDir)))
				return pid
			}
		}
	}
	return 0
}

// listeners adds to inodes the socket inodes of a /proc/net/tcp table's
// listening sockets on port (fields: sl, local address as HEXIP:HEXPORT,
// remote address, state — 0A is LISTEN — …, inode tenth).
func listeners(table string, port int, inodes map[string]bool) {
	f, err := os.Open(table)
	if err != nil {
		return
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 10 && fs[3] == "0A" && strings.HasSuffix(fs[1], want) {
			inodes[fs[9]] = true
		}
	}
}

// cmdline is a process's argv as /proc shows it (nil when it is gone).
func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

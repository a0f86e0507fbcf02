package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// startStdlibProxy runs the reference proxy in a process of its own, as
// gantry is, in front of both engines, and fills in the ways to it.
func startStdlibProxy(fast, stream *ways) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	fa, sa := fmt.Sprintf("127.0.0.1:%d", freePort()), fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd := exec.Command(exe, "-serve-stdlib-proxy", fa+"="+fast.direct+","+sa+"="+stream.direct)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	fast.stdlib, stream.stdlib = "http://"+fa, "http://"+sa
	fast.pids[2], stream.pids[2] = cmd.Process.Pid, cmd.Process.Pid
	for _, base := range []string{fast.stdlib, stream.stdlib} {
		if err := waitOK(base+"/health", 10*time.Second); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("stdlib proxy: %w", err)
		}
	}
	return cmd, nil
}

// serveStdlibProxy serves httputil.ReverseProxy as it comes — default
// transport, no tuning — on each listen=upstream pair, until killed. It
// flushes server-sent events as they arrive, as gantry does.
func serveStdlibProxy(spec string) {
	for _, pair := range strings.Split(spec, ",") {
		listen, upstream, _ := strings.Cut(pair, "=")
		u, err := url.Parse(upstream)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: stdlib proxy:", err)
			os.Exit(2)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: stdlib proxy:", err)
			os.Exit(2)
		}
		go http.Serve(ln, httputil.NewSingleHostReverseProxy(u))
	}
	select {}
}

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The ways to an engine that the bench compares, in the same run and
// interleaved: straight to its port; through a raw TCP relay (accept, dial,
// io.Copy both ways: no HTTP work at all — the floor of what relaying bytes
// costs on this machine); through the standard library's
// httputil.ReverseProxy as it comes; and through gantry.
const (
	direct = iota
	raw
	stdlib
	gantry
	nWays
)

var wayNames = [nWays]string{"direct", "raw relay", "stdlib proxy", "gantry"}

// relays are the ways in between: all but direct.
var relays = []int{raw, stdlib, gantry}

// ways are the four ways to one engine: their base URLs, and the pids of
// the processes in between (0 for direct).
type ways struct {
	url [nWays]string
	pid [nWays]int
}

// rotated is the order of the ways in round i: each goes first, second,
// third and last in turn, so that what the order costs lands on all.
func rotated(i int) [nWays]int {
	var o [nWays]int
	for k := range o {
		o[k] = (i + k) % nWays
	}
	return o
}

// startRelays runs the raw relay and the stdlib proxy, each in a process
// of its own (as gantry is, so that each one's CPU time is its own), in
// front of every engine of ws, and fills in their ways. stop ends both.
func startRelays(ws ...*ways) (stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
	for _, k := range []int{raw, stdlib} {
		var pairs []string
		for _, w := range ws {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort())
			pairs = append(pairs, addr+"="+strings.TrimPrefix(w.url[direct], "http://"))
			w.url[k] = "http://" + addr
		}
		flag := map[int]string{raw: "-serve-raw-relay", stdlib: "-serve-stdlib-proxy"}[k]
		cmd := exec.Command(exe, flag, strings.Join(pairs, ","))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			stop()
			return nil, err
		}
		cmds = append(cmds, cmd)
		for _, w := range ws {
			w.pid[k] = cmd.Process.Pid
			if err := waitOK(w.url[k]+"/health", 10*time.Second); err != nil {
				stop()
				return nil, fmt.Errorf("%s: %w", wayNames[k], err)
			}
		}
	}
	return stop, nil
}

// listenPairs listens on each listen=upstream pair of spec and calls serve
// with the listener and the upstream's host:port; it exits on an error.
func listenPairs(spec string, serve func(ln net.Listener, upstream string)) {
	for _, pair := range strings.Split(spec, ",") {
		listen, upstream, _ := strings.Cut(pair, "=")
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		go serve(ln, upstream)
	}
	select {}
}

// serveStdlibProxy serves httputil.ReverseProxy as it comes — default
// transport, no tuning — until killed. It flushes server-sent events as
// they arrive, as gantry does.
func serveStdlibProxy(spec string) {
	listenPairs(spec, func(ln net.Listener, upstream string) {
		http.Serve(ln, httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream}))
	})
}

// serveRawRelay relays every connection to a connection of its own to the
// upstream, bytes both ways with io.Copy, until killed: the floor.
func serveRawRelay(spec string) {
	listenPairs(spec, func(ln net.Listener, upstream string) {
		for {
			c, err := ln.Accept()
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: raw relay:", err)
				os.Exit(2)
			}
			go relayConn(c.(*net.TCPConn), upstream)
		}
	})
}

func relayConn(c *net.TCPConn, upstream string) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(u, c)
		u.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, u)
	c.CloseWrite()
	<-done
}

package sim

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// validateNodes checks the multi-node flags.
func (o *Options) validateNodes() error {
	if o.NNodes == 0 {
		o.NNodes = 1 // one node: the zero value
	}
	switch {
	case o.NNodes < 1:
		return fmt.Errorf("--nnodes must be at least 1")
	case o.NodeRank < 0 || o.NodeRank >= o.NNodes:
		return fmt.Errorf("--node-rank %d: want 0 to %d (--nnodes %d)", o.NodeRank, o.NNodes-1, o.NNodes)
	case o.NNodes > 1 && o.DistInitAddr == "":
		return fmt.Errorf("--nnodes %d needs --dist-init-addr HOST:PORT (rank 0's address)", o.NNodes)
	}
	if o.NNodes > 1 {
		if _, port, err := net.SplitHostPort(o.DistInitAddr); err != nil || port == "" {
			return fmt.Errorf("--dist-init-addr %q is not host:port", o.DistInitAddr)
		}
	}
	return nil
}

// joinGroup joins the ranks of a model across nodes the way
// torch.distributed's TCP rendezvous does, before the load: rank 0 listens
// on the port of --dist-init-addr (every address) and waits until every
// other rank has connected; a rank ≥ 1 dials rank 0, again and again until
// it answers. Once joined, a connection that breaks breaks the group, as
// NCCL's communicators do: the returned channel gets the reason, and the
// rank exits. With one node it returns nil at once.
func (s *server) joinGroup(ctx context.Context) (<-chan error, error) {
	o := s.o
	if o.NNodes <= 1 {
		return nil, nil
	}
	lost := make(chan error, o.NNodes)
	watch := func(c net.Conn, who string) {
		s.group = append(s.group, c)
		go func() {
			rd := bufio.NewReader(c)
			for {
				if _, err := rd.ReadString('\n'); err != nil {
					lost <- fmt.Errorf("%s closed the connection (%v)", who, err)
					return
				}
			}
		}()
	}
	if o.NodeRank > 0 {
		s.log.Printf("sim: rank %d of %d: connecting to rank 0 at %s", o.NodeRank, o.NNodes, o.DistInitAddr)
		d := net.Dialer{Timeout: time.Second, KeepAlive: time.Second}
		for {
			c, err := d.DialContext(ctx, "tcp", o.DistInitAddr)
			if err == nil {
				fmt.Fprintf(c, "rank %d\n", o.NodeRank)
				s.log.Printf("sim: rank %d of %d: joined the group", o.NodeRank, o.NNodes)
				watch(c, "rank 0")
				return lost, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	_, port, _ := net.SplitHostPort(o.DistInitAddr)
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return nil, fmt.Errorf("rank 0: listen on %s for the other ranks: %w", o.DistInitAddr, err)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	joined := map[int]bool{}
	for len(joined) < o.NNodes-1 {
		s.log.Printf("sim: rank 0 of %d: waiting for %d more rank(s) on :%s", o.NNodes, o.NNodes-1-len(joined), port)
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.SetReadDeadline(time.Time{})
		r, perr := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "rank "))
		if err != nil || perr != nil || r < 1 || r >= o.NNodes || joined[r] {
			s.log.Printf("sim: rank 0: refused a connection from %s (%q)", c.RemoteAddr(), strings.TrimSpace(line))
			c.Close()
			continue
		}
		joined[r] = true
		s.log.Printf("sim: rank 0: rank %d joined from %s", r, c.RemoteAddr())
		watch(c, "rank "+strconv.Itoa(r))
	}
	return lost, nil
}

// leaveGroup closes the connections to the other ranks: a rank that ends
// ends the group (a process that exits closes them anyway).
func (s *server) leaveGroup() {
	for _, c := range s.group {
		c.Close()
	}
}

// rankRoutes are what a rank ≥ 1 serves: health only, as SGLang's stand-in
// server on those ranks (launch_dummy_health_check_server) does once the
// rank has loaded; every other path is FastAPI's 404.
func (s *server) rankRoutes() http.Handler {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) {
		if s.notReady(w) {
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	mux.HandleFunc("GET /health", ok)
	mux.HandleFunc("GET /health_generate", ok)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not Found"})
	})
	return mux
}

package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// TestUpstreamSkipsInformational: an engine that answers 100 Continue
// first still gives the client its real answer, and the connection is
// reused afterwards.
func TestUpstreamSkipsInformational(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	u := newUpstream(4)
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("POST", "/v1/chat/completions", nil)
		resp, err := u.roundTrip(ln.Addr().String(), req, []byte(`{"model":"m"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	}
	if accepted.Load() != 1 {
		t.Errorf("%d connections for 3 requests: not reused", accepted.Load())
	}
}

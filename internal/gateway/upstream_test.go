package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestUpstreamSkipsInformational: an engine that answers 100 Continue
// first still gives the client its real answer, and the connection is
// reused afterwards.
func TestUpstreamSkipsInformational(t *testing.T) {
	var accepted atomic.Int32
	addr := rawEngine(t, &accepted, func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	u := newUpstream(4)
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("POST", "/v1/chat/completions", nil)
		resp, err := u.roundTrip(addr, req, []byte(`{"model":"m"}`))
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

// echoEngine answers every request with its method, its request target as
// it came on the wire and its body, and counts them.
func echoEngine(seen *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, r.Method+" "+r.RequestURI+" "+string(b))
	})
}

// TestUpstreamPathCannotSplitTheRequest: a percent-encoded CR LF under
// /upstream/{model}/ never becomes a second request on the engine's
// pooled connection (it did: the next client read the smuggled answer),
// an escaped slash stays escaped, and each later client gets its own
// answer.
func TestUpstreamPathCannotSplitTheRequest(t *testing.T) {
	var seen atomic.Int32
	gw := testGateway(t, "models:\n  m: {engine: sim, memory: 1GiB, port: ENGINE_m}\n",
		map[string]http.Handler{"m": echoEngine(&seen)}, nil)
	refused := func(path string) {
		t.Helper()
		req, _ := http.NewRequest("GET", gw+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "bad_path") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	refused("/upstream/m/a%20HTTP/1.1%0d%0aHost:%20x%0d%0a%0d%0aGET%20/smuggled")
	for i := 0; i < 4; i++ {
		body := fmt.Sprintf(`{"model":"m","n":%d}`, i)
		if code, _, got := post(t, gw+"/v1/chat/completions", body); code != 200 || got != "POST /v1/chat/completions "+body {
			t.Errorf("client %d got %d %q", i, code, got)
		}
	}
	for _, path := range []string{"/upstream/m/a%0ab", "/upstream/m/a%00b", "/upstream/m/a%20b", "/upstream/m/a%7fb", "/upstream/m/a%09b"} {
		refused(path)
	}
	if n := seen.Load(); n != 4 {
		t.Errorf("the engine got %d requests for 4 clients", n)
	}
	code, _, got := post(t, gw+"/upstream/m/v1/models/a%2Fb?x=1", "")
	if code != 200 || got != "POST /v1/models/a%2Fb?x=1 " {
		t.Errorf("escaped slash: %d %q", code, got)
	}
}

// TestUnsolicitedAnswerClosesTheConnection: an engine that answers one
// request twice — at once, or a moment later while the connection is idle
// — never hands its extra answer to the next client: the connection it
// came on is closed, not pooled.
func TestUnsolicitedAnswerClosesTheConnection(t *testing.T) {
	late := make(chan struct{}, 1)
	addr := rawEngine(t, nil, func(c net.Conn, req *http.Request) {
		answer := "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(req.URL.Path)) + "\r\n\r\n" + req.URL.Path
		switch req.URL.Path {
		case "/twice":
			io.WriteString(c, answer+"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")
		case "/later":
			io.WriteString(c, answer)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")
			late <- struct{}{}
		default:
			io.WriteString(c, answer)
		}
	})
	u := newUpstream(4)
	do := func(path string) string {
		req, _ := http.NewRequest("POST", path, nil)
		resp, err := u.roundTrip(addr, req, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for _, first := range []string{"/twice", "/later"} {
		if got := do(first); got != first {
			t.Fatalf("%s answered %q", first, got)
		}
		if first == "/later" {
			<-late // the extra answer is on its way before the next request
		}
		if got := do("/next"); got != "/next" {
			t.Errorf("after %s, the next client got %q", first, got)
		}
	}
}

// rawEngine is an engine that reads requests one after another on each
// connection (counted in accepted when set) and lets answer write
// whatever it likes back: what a well-behaved server would not do.
func rawEngine(t *testing.T, accepted *atomic.Int32, answer func(c net.Conn, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if accepted != nil {
				accepted.Add(1)
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					answer(c, req)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

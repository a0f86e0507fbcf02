package gateway

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/activity"
	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/supervise"
)

// readyRunner is an engine that is ready once started: the benchmark
// measures the gateway, not an engine's start.
type readyRunner struct {
	m *config.Model
	l engine.Launch
	o supervise.Options
}

func (r *readyRunner) Start(context.Context) error {
	r.o.OnEvent(supervise.Event{Model: r.m.Name, From: status.Stopped, To: status.Ready})
	return nil
}
func (r *readyRunner) Stop(context.Context) error  { return nil }
func (r *readyRunner) Close(context.Context) error { return nil }
func (r *readyRunner) Status() supervise.Status    { return supervise.Status{State: status.Ready} }
func (r *readyRunner) State() status.State         { return status.Ready }
func (r *readyRunner) SetRestart(bool)             {}
func (r *readyRunner) Model() *config.Model        { return r.m }
func (r *readyRunner) Launch() engine.Launch       { return r.l }
func (r *readyRunner) Log() *supervise.Log         { return nil }

const answer = `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hallo!"},"finish_reason":"stop"}]}`

// BenchmarkProxyRequest sends one small chat request at a time over
// loopback keep-alive connections, straight to an engine and through the
// gateway: the difference is what the gateway costs a request (time and
// allocations; client and engine run in the same process, so allocs/op
// counts all three).
func BenchmarkProxyRequest(b *testing.B) {
	direct, proxied, recorded := behindGateways(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	body := []byte(`{"model":"scout","messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}],"max_tokens":16}`)
	for _, bc := range []struct{ name, url string }{{"direct", direct}, {"raw", rawRelay(b, direct)}, {"proxied", proxied}, {"proxied+activity", recorded}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Post(bc.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n != int64(len(answer)) {
					b.Fatal(resp.StatusCode, strconv.FormatInt(n, 10))
				}
			}
		})
	}
}

// BenchmarkProxyStream relays a stream whose engine writes the next event
// only when the client has read the last (a channel between the two, in
// this process): ns/op is one event's trip, engine to client, so proxied
// minus direct is what relaying an event costs on an idle machine — a
// wake-up, a read from the engine and a write to the client.
func BenchmarkProxyStream(b *testing.B) {
	ev := []byte(`data: {"choices":[{"delta":{"content":" token"},"finish_reason":null,"index":0}],"created":1,"id":"x","model":"m","object":"chat.completion.chunk"}` + "\n\n")
	next := make(chan bool)
	direct, proxied, recorded := behindGateways(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		fl.Flush() // the headers: the client's Post returns
		for <-next {
			w.Write(ev)
			fl.Flush()
		}
	}))
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	body := []byte(`{"model":"scout","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	for _, bc := range []struct{ name, url string }{{"direct", direct}, {"raw", rawRelay(b, direct)}, {"proxied", proxied}, {"proxied+activity", recorded}} {
		b.Run(bc.name, func(b *testing.B) {
			resp, err := client.Post(bc.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, len(ev))
			b.ReportAllocs()
			b.SetBytes(int64(len(ev)))
			for b.Loop() {
				next <- true
				if _, err := io.ReadFull(resp.Body, buf); err != nil {
					b.Fatal(err)
				}
			}
			next <- false
		})
	}
}

// rawRelay is a raw TCP relay in front of the engine at url (accept,
// dial, io.Copy both ways: no HTTP work at all), the floor a gateway is
// measured against: raw minus direct is what relaying bytes costs.
func rawRelay(b testing.TB, url string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	upstream := strings.TrimPrefix(url, "http://")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// behindGateway serves engineHandler as the always-on model "scout" behind
// a gateway and returns the engine's URL and the gateway's.
func behindGateway(b testing.TB, engineHandler http.Handler, setup ...func(*Gateway)) (direct, proxied string) {
	direct, proxied, _ = behindGateways(b, engineHandler, setup...)
	return direct, proxied
}

// readyScheduler is a scheduler whose one model, the always-on "scout",
// is the engine at addr (host:port), ready at once: the benchmarks
// measure the gateway, not an engine's start.
func readyScheduler(b testing.TB, addr string) *sched.Scheduler {
	_, port, _ := net.SplitHostPort(addr)
	c, err := config.Parse("t.yaml", []byte("root: "+b.TempDir()+"\nmodels:\n  scout: {engine: sim, memory: 1GiB, mode: always-on, port: "+port+"}\n"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := sched.New(c, sched.Options{MemoryTotal: 10 << 30, NewRunner: func(sp sched.RunnerSpec) (sched.Runner, error) {
		return &readyRunner{m: sp.Model, l: sp.Launch, o: sp.Options}, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	if err := s.Start(context.Background(), "scout"); err != nil {
		b.Fatal(err)
	}
	return s
}

// behindGateways is behindGateway with a second gateway in front of the
// same engine that records every request in an activity log.
func behindGateways(b testing.TB, engineHandler http.Handler, setup ...func(*Gateway)) (direct, proxied, recorded string) {
	up := httptest.NewServer(engineHandler)
	b.Cleanup(up.Close)
	s := readyScheduler(b, up.Listener.Addr().String())
	serve := func(act *activity.Store) string {
		g := New(s, nil, nil)
		b.Cleanup(g.Close)
		for _, f := range setup {
			f(g)
		}
		if act != nil {
			g.SetActivity(act, func(*http.Request) string { return "" })
		}
		mux := http.NewServeMux()
		g.Register(mux, Wraps{Gateway: func(h http.Handler) http.Handler { return h }})
		gw := httptest.NewServer(mux)
		b.Cleanup(gw.Close)
		return gw.URL
	}
	act, err := activity.Open(activity.Options{Dir: b.TempDir(), KeepDays: 1, KeepRows: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { act.Close() })
	return up.URL, serve(nil), serve(act)
}

package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

func init() {
	register(phase{name: "trickle", section: "gateway", order: 90, run: func(e *env) error {
		trickle(e.gw, e.pid, 200, 256*1.048576)
		return nil
	}})
}

// trickle opens n connections that each claim a max_body request and send
// it slowly (the bytes come in pieces over a few seconds), and reports
// gantry's peak RSS while they do: the request bodies held in memory are
// capped by max_body_total, whatever the clients claim.
func trickle(gw string, pid, n int, capMB float64) {
	addr := strings.TrimPrefix(gw, "http://")
	before := rss(pid)
	peak := before
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refused, cut int
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			const claim = 32<<20 - 1
			fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"model\":\"fast\",\"x\":\"", claim)
			piece := []byte(strings.Repeat("a", 64<<10))
			for sent := 0; sent < 4<<20; sent += len(piece) {
				select {
				case <-stop:
					return
				default:
				}
				c.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write(piece); err != nil {
					mu.Lock()
					cut++
					mu.Unlock()
					return
				}
				time.Sleep(40 * time.Millisecond)
			}
			buf := make([]byte, 512)
			c.SetReadDeadline(time.Now().Add(time.Second))
			if k, _ := c.Read(buf); k > 0 && strings.Contains(string(buf[:k]), " 503 ") {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case <-done:
			break wait
		case <-deadline:
			close(stop)
			<-done
			break wait
		case <-tick.C:
			peak = max(peak, rss(pid))
		}
	}
	limit := capMB + 60
	record(fmt.Sprintf("gantry RSS peak, %d connections trickling 4 MiB into 32 MiB claims", n),
		fmt.Sprintf("%.0f MB (from %.0f; %d cut off by the cap)", peak, before, refused+cut),
		fmt.Sprintf("≤ max_body_total %.0f MB + 60", capMB), yes(peak <= limit))
}

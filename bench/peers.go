package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func init() {
	register(phase{name: "peer", section: "gateway", order: 50, run: func(e *env) error {
		return peerRelay(e.bin, e.dir, e.gw, map[bool]int{true: 500, false: 1500}[*quick], rounds(7))
	}})
}

// peerRelay starts a second gantry whose only models are the first's, as
// its peer (the front box of two), and compares requests and streams
// through it — relayed to the first gantry over its peer link — with the
// same sent to the first gantry itself, interleaved in the same run.
func peerRelay(bin, dir, gw string, requests, rounds int) error {
	listen := fmt.Sprintf("127.0.0.1:%d", freePort())
	cfg := fmt.Sprintf(`listen: %s
root: %s
memory: {total: 8GiB, reserve: 0GiB}
activity: {keep_days: 0}
peers:
  main: {url: %q, health_interval: 1s}
models:
  idle: {engine: sim, memory: 1GiB}
`, listen, filepath.Join(dir, "front"), gw)
	path := filepath.Join(dir, "front.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	_, stop, err := serve(bin, path, listen, nil)
	if err != nil {
		return err
	}
	defer stop()
	fw := "http://" + listen
	// The peer's models show once its first check is in.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := client.Get(fw + "/v1/models")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(r.Body)
			r.Body.Close()
			if strings.Contains(b.String(), `"peer":"main"`) {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the front gantry never listed its peer's models")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var local, relayed []time.Duration
	for i := 0; i < requests; i++ {
		for k, base := range [2]string{gw, fw} {
			if i%2 == 1 {
				base = [2]string{fw, gw}[k]
			}
			d, err := once(base, "fast")
			if err != nil {
				return fmt.Errorf("%s: %v", base, err)
			}
			if base == gw {
				local = append(local, d)
			} else {
				relayed = append(relayed, d)
			}
		}
	}
	lp, rp := pct(local, 50), pct(relayed, 50)
	record("1 client through a peer: local / relayed p50", fmt.Sprintf("%s / %s (+%d µs)", us(lp), us(rp), (rp-lp).Microseconds()), "", nil)
	record("1 client through a peer: local / relayed p99", fmt.Sprintf("%s / %s", us(pct(local, 99)), us(pct(relayed, 99))), "", nil)
	streamRun(fw, 500) // warm the peer link's pool, as the local side's is
	var ls, rs []round
	for i := 0; i < rounds; i++ {
		order := [2]string{gw, fw}
		if i%2 == 1 {
			order = [2]string{fw, gw}
		}
		for _, base := range order {
			r := streamRound(base, 500)
			if base == gw {
				ls = append(ls, r)
			} else {
				rs = append(rs, r)
			}
		}
	}
	fps := func(r round) float64 { return r.fps }
	del99 := func(r round) float64 { return r.del99 }
	ratio := func(l, r round) float64 { return r.fps / l.fps }
	var cut [2]int64
	for i := range ls {
		cut[0] += ls[i].bad
		cut[1] += rs[i].bad
	}
	q := median(pairs(ls, rs, ratio))
	record("500 streams through a peer: frames/s local / relayed", fmt.Sprintf("%.0f / %.0f (streams cut: %d / %d)",
		median(each(ls, fps)), median(each(rs, fps)), cut[0], cut[1]), "", nil)
	record("500 streams through a peer: relayed/local frames ratio", fmt.Sprintf("%.4f (%s)", q, spread("%.4f", pairs(ls, rs, ratio))), "≥ 0.95", yes(q >= 0.95))
	record("500 streams through a peer: event delivery p99 local / relayed", fmt.Sprintf("%.2f / %.2f ms", median(each(ls, del99)), median(each(rs, del99))), "", nil)
	return nil
}

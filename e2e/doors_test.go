package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

// post sends a JSON body to url and returns the status and body.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// answeredBy is the model an OpenAI answer names (a sim names its --model).
func answeredBy(t *testing.T, body string) string {
	t.Helper()
	var a struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	return a.Model
}

// TestSeedAddresses: gantry serves a model and a slot on addresses of
// their own, as the seed's :30000 and :30001. A request there starts the
// stopped model; the slot's address switches between members, draining
// the one in use; when the other member idles out, the default comes back.
func TestSeedAddresses(t *testing.T) {
	var modelAddr, slotAddr string
	d := startDaemonWith(t, func(string) string {
		modelAddr = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		slotAddr = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		return `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
models:
  scout: {engine: sim, memory: 2GiB, listen: "` + modelAddr + `", args: [--flavor, sglang, --load-time, 300ms, --model, e2e-door-scout]}
  qwen: {engine: sim, memory: 2GiB, slot: private, idle_timeout: 2s, args: [--tokens, 20, --itl, 50ms, --model, e2e-door-qwen]}
  r1: {engine: sim, memory: 2GiB, slot: private, idle_timeout: 2s, args: [--model, e2e-door-r1]}
slots:
  private: {listen: "` + slotAddr + `", default: qwen, min_residency: 0s}
`
	})
	if st, _ := d.model("scout"); st != "stopped" {
		t.Fatalf("scout is %s before any request", st)
	}
	// The model's address: no model named, or any other name, goes to scout.
	code, body := post(t, "http://"+modelAddr+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}`)
	if code != 200 || answeredBy(t, body) != "e2e-door-scout" {
		t.Fatalf("no model on scout's address: %d %s", code, body)
	}
	code, body = post(t, "http://"+modelAddr+"/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`)
	if code != 200 || answeredBy(t, body) != "e2e-door-scout" {
		t.Fatalf("another name on scout's address: %d %s", code, body)
	}
	resp, err := http.Get("http://" + modelAddr + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"id":"scout"`) || strings.Contains(string(b), `"id":"qwen"`) {
		t.Errorf("scout's address lists %s", b)
	}

	// The slot's address: the default starts at boot and answers a request
	// that names no member.
	d.waitState("qwen", "ready", 20*time.Second)
	code, body = post(t, "http://"+slotAddr+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`)
	if code != 200 || answeredBy(t, body) != "e2e-door-qwen" {
		t.Fatalf("slot, no model: %d %s", code, body)
	}
	// A stream to qwen is in flight (20 tokens, 1 s) when r1 is asked for:
	// the switch waits for it to finish.
	sresp, err := http.Post("http://"+slotAddr+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"anything","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	rd := bufio.NewReader(sresp.Body)
	if _, err := rd.ReadString('\n'); err != nil { // the stream has begun
		t.Fatal(err)
	}
	switched := make(chan string, 1)
	go func() {
		_, body := post(t, "http://"+slotAddr+"/v1/chat/completions", `{"model":"r1","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`)
		switched <- body
	}()
	rest, err := io.ReadAll(rd)
	if err != nil || !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("the stream in flight was cut by the switch: %v\n%s", err, rest)
	}
	if got := answeredBy(t, <-switched); got != "e2e-door-r1" {
		t.Fatalf("the switch answered as %q", got)
	}
	if st, _ := d.model("qwen"); st != "stopped" {
		t.Errorf("qwen is %s after the switch", st)
	}
	// r1 idles out after 2 s; the default comes back.
	d.waitState("r1", "stopped", 20*time.Second)
	d.waitState("qwen", "ready", 20*time.Second)

	// gantry docs writes the addresses into inference_endpoints.md.
	out := filepath.Join(d.home, "docs")
	if o, code := d.gantry("docs", "--out", out); code != 0 {
		t.Fatalf("docs: %s", o)
	}
	ep, _ := os.ReadFile(filepath.Join(out, "inference_endpoints.md"))
	if !strings.Contains(string(ep), "`http://"+modelAddr+"/v1`") || !strings.Contains(string(ep), "| private | `http://"+slotAddr+"/v1`") {
		t.Errorf("inference_endpoints.md lacks the addresses:\n%s", ep)
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUpstreamCannotSplitRequests: a percent-encoded CR LF under
// /upstream/{model}/ (the admin route, open to any local process on the
// keyless loopback default) is refused, and every ordinary client after
// it — one at a time and many at once — gets its own answer. On the
// gantry before the fix, the decoded path was the engine's request line:
// the smuggled second request's answer waited on the pooled connection
// and the next client read it.
func TestUpstreamCannotSplitRequests(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 0GiB}
models:
  m: {engine: sim, memory: 1GiB, mode: always-on, args: [--flavor, vllm, --tokens, 40]}
`)
	d.waitState("m", "ready", 30*time.Second)
	smuggle := "/upstream/m/v1/models%20HTTP/1.1%0d%0aHost:%20x%0d%0a%0d%0aGET%20/v1/models"
	for _, path := range []string{smuggle, "/upstream/m/health%0aX:%20y", "/upstream/m/a%20b"} {
		resp, err := http.Get(d.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "bad_path") {
			t.Errorf("%s: %d %.300s", path, resp.StatusCode, b)
		}
	}
	// Client i asks for i+1 tokens: its answer is its own when the engine
	// counted i+1.
	ask := func(i int) error {
		body := fmt.Sprintf(`{"model":"m","max_tokens":%d,"messages":[{"role":"user","content":"client %d"}]}`, i+1, i)
		resp, err := http.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var ans struct {
			Object string `json:"object"`
			Usage  struct {
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &ans) != nil || ans.Object != "chat.completion" || ans.Usage.Completion != i+1 {
			return fmt.Errorf("client %d got someone else's answer: %d %.300s", i, resp.StatusCode, b)
		}
		return nil
	}
	for i := 0; i < 4; i++ {
		if err := ask(i); err != nil {
			t.Error(err)
		}
	}
	for round := 0; round < 2; round++ {
		if _, err := http.Get(d.url + smuggle); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := ask(i); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	// The route still does its job: an engine's own endpoint (tokenize of
	// a vLLM-flavoured sim) answers.
	resp, err := http.Post(d.url+"/upstream/m/tokenize", "application/json", strings.NewReader(`{"prompt":"eins zwei drei"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"count":3`) {
		t.Errorf("/upstream/m/tokenize: %d %s", resp.StatusCode, b)
	}
}

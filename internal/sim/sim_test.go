package sim

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/testbin"
)

func freePort(t *testing.T) int { return testbin.FreePort(t) }

// start runs a sim in-process and returns its base URL.
func start(t *testing.T, o Options) string {
	t.Helper()
	o.Port = freePort(t)
	o.Host = "127.0.0.1"
	if o.Model == "" {
		o.Model = "m"
	}
	if o.Flavor == "" {
		o.Flavor = "vllm"
	}
	if o.Tokens == 0 {
		o.Tokens = 8
	}
	if o.Dims == 0 {
		o.Dims = 16
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o, io.Discard) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://127.0.0.1:" + strconv.Itoa(o.Port)
}

type probe struct {
	refused bool
	status  int
	body    string
}

func get(url string) probe {
	resp, err := http.Get(url)
	if err != nil {
		return probe{refused: errors.Is(err, syscall.ECONNREFUSED)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return probe{status: resp.StatusCode, body: string(b)}
}

// observe polls url until it answers 200 and returns the distinct phases
// seen on the way: "refused", "503", "200".
func observe(t *testing.T, url string) []string {
	t.Helper()
	var phases []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p := get(url)
		ph := "refused"
		if !p.refused {
			ph = strconv.Itoa(p.status)
		}
		if len(phases) == 0 || phases[len(phases)-1] != ph {
			phases = append(phases, ph)
		}
		if ph == "200" {
			return phases
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never became ready; phases %v", url, phases)
	return nil
}

func TestFlavorHealthSemantics(t *testing.T) {
	cases := map[string][]string{
		"vllm":     {"refused", "200"},
		"trtllm":   {"refused", "200"},
		"sglang":   {"refused", "503", "200"},
		"llamacpp": {"503", "200"},
	}
	for flavor, want := range cases {
		t.Run(flavor, func(t *testing.T) {
			base := start(t, Options{Flavor: flavor, LoadTime: 400 * time.Millisecond})
			got := observe(t, base+"/health")
			if want[0] != "refused" && got[0] == "refused" {
				got = got[1:] // the goroutine had not bound its port yet
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("phases %v, want %v", got, want)
			}
		})
	}
}

func TestLlamaCppSaysLoadingModel(t *testing.T) {
	base := start(t, Options{Flavor: "llamacpp", HangLoad: true})
	var p probe
	for i := 0; i < 200; i++ {
		if p = get(base + "/health"); !p.refused {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p.status != 503 || !strings.Contains(p.body, "Loading model") {
		t.Errorf("got %+v", p)
	}
}

func TestChatNonStreaming(t *testing.T) {
	base := start(t, Options{Tokens: 5})
	observe(t, base+"/health")
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"Hallo"}],"max_tokens":3}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Message      struct{ Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Usage.CompletionTokens != 3 || out.Choices[0].FinishReason != "length" || out.Choices[0].Message.Content == "" {
		t.Errorf("got %+v", out)
	}
}

func TestStreamIsPaced(t *testing.T) {
	base := start(t, Options{Tokens: 6, TTFT: 100 * time.Millisecond, ITL: 50 * time.Millisecond})
	observe(t, base+"/health")
	began := time.Now()
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var arrivals []time.Duration
	var text strings.Builder
	var usage, done bool
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			done = true
			continue
		}
		var ev struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Model   string `json:"model"`
			Created int64  `json:"created"`
			Choices []struct {
				Delta        struct{ Role, Content string } `json:"delta"`
				FinishReason *string                        `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if ev.Object != "chat.completion.chunk" || ev.ID == "" || ev.Created == 0 || ev.Model == "" {
			t.Errorf("event %q lacks its id, object, model or created", data)
		}
		if ev.Usage != nil {
			usage = ev.Usage.Completion == 6 && len(ev.Choices) == 0
			continue
		}
		i := len(arrivals)
		arrivals = append(arrivals, time.Since(began))
		c := ev.Choices[0]
		text.WriteString(c.Delta.Content)
		if (c.Delta.Role == "assistant") != (i == 0) || (c.FinishReason != nil) != (i == 5) {
			t.Errorf("event %d: %q: the role belongs to the first, the finish reason to the last", i, data)
		}
	}
	if len(arrivals) != 6 || !usage || !done {
		t.Fatalf("chunks %d usage %v done %v", len(arrivals), usage, done)
	}
	if text.String() != "Hallo from the simulated engine," {
		t.Errorf("text %q", text.String())
	}
	// Token i is due TTFT + i×ITL after the start, never earlier.
	for i, at := range arrivals {
		if due := 100*time.Millisecond + time.Duration(i)*50*time.Millisecond; at < due {
			t.Errorf("token %d after %s, before it was due (%s)", i, at, due)
		}
	}
}

func TestEmbeddingsDeterministic(t *testing.T) {
	base := start(t, Options{Embed: true, Dims: 32})
	observe(t, base+"/health")
	embed := func(body string) [][]float64 {
		resp, err := http.Post(base+"/v1/embeddings", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Data []struct{ Embedding []float64 }
		}
		json.NewDecoder(resp.Body).Decode(&out)
		var vs [][]float64
		for _, d := range out.Data {
			vs = append(vs, d.Embedding)
		}
		return vs
	}
	a := embed(`{"model":"m","input":"hallo"}`)
	b := embed(`{"model":"m","input":["hallo","welt"]}`)
	if len(a) != 1 || len(b) != 2 || len(a[0]) != 32 {
		t.Fatalf("shapes %d %d", len(a), len(b))
	}
	for i := range a[0] {
		if a[0][i] != b[0][i] {
			t.Fatal("same input, different vectors")
		}
	}
}

func TestMetricsInFlavourNames(t *testing.T) {
	for flavor, name := range map[string]string{"vllm": "vllm:num_requests_running", "sglang": "sglang:num_running_reqs", "llamacpp": "llamacpp:requests_processing"} {
		base := start(t, Options{Flavor: flavor})
		observe(t, base+"/health")
		if p := get(base + "/metrics"); !strings.Contains(p.body, name) {
			t.Errorf("%s metrics lack %s:\n%s", flavor, name, p.body)
		}
	}
}

func TestFailHealthAfter(t *testing.T) {
	base := start(t, Options{FailHealthAfter: 2})
	observe(t, base+"/health") // 1
	get(base + "/health")      // 2
	if p := get(base + "/health"); p.status != 500 {
		t.Errorf("third health answer %d, want 500", p.status)
	}
}

// TestLoadUntilSignal: with --load-until-signal the load lasts until
// SIGUSR1, however long that is.
func TestLoadUntilSignal(t *testing.T) {
	base := start(t, Options{Flavor: "llamacpp", LoadUntilSignal: true})
	// llama-server listens while loading: a 503 means the sim is up and
	// already waits for the signal (it registers before it listens).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		p := get(base + "/health")
		if p.status == http.StatusServiceUnavailable {
			break
		}
		if p.status == http.StatusOK {
			t.Fatal("ready before the signal")
		}
		if time.Now().After(deadline) {
			t.Fatal("the sim never answered while loading")
		}
	}
	if p := get(base + "/health"); p.status != http.StatusServiceUnavailable {
		t.Fatalf("health %d while still loading", p.status)
	}
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	if phases := observe(t, base+"/health"); phases[len(phases)-1] != "200" {
		t.Fatalf("phases %v", phases)
	}
}

// TestStampedEvents: --stamp-events puts the send instant into every
// streamed event, between the request and the event's arrival.
func TestStampedEvents(t *testing.T) {
	base := start(t, Options{Tokens: 3, StampEvents: true})
	observe(t, base+"/health")
	began := time.Now().UnixNano()
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	n := 0
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: {")
		if !ok {
			continue
		}
		arrived := time.Now().UnixNano()
		var ev struct {
			Sent   int64  `json:"sim_unix_ns"`
			Object string `json:"object"`
		}
		if err := json.Unmarshal([]byte("{"+data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if ev.Sent < began || ev.Sent > arrived || ev.Object != "chat.completion.chunk" {
			t.Errorf("event %q: sent %d, not between %d and %d", data, ev.Sent, began, arrived)
		}
		n++
	}
	if n != 4 { // three tokens and the usage
		t.Errorf("%d events, want 4", n)
	}
}

// TestUsageChunkOnlyWhenAsked: like vLLM, SGLang and llama.cpp, the sim
// ends a stream with a usage chunk only when stream_options asks for it.
func TestUsageChunkOnlyWhenAsked(t *testing.T) {
	base := start(t, Options{Tokens: 2})
	observe(t, base+"/health")
	for _, ask := range []bool{false, true} {
		body := `{"model":"m","stream":true,"messages":[]}`
		if ask {
			body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`
		}
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.Contains(string(b), `"usage"`); got != ask {
			t.Errorf("include_usage %v: usage chunk %v\n%s", ask, got, b)
		}
	}
}

// TestToolCallWhenRequired: with tool_choice "required" the sim calls the
// first tool, its required arguments filled, streamed in fragments.
func TestToolCallWhenRequired(t *testing.T) {
	base := start(t, Options{})
	observe(t, base+"/health")
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city","days"]}}}]`
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[],"tool_choice":"required",`+tools+`}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"finish_reason":"tool_calls"`) || !strings.Contains(string(b), `"arguments":"{\"city\":\"sim\",\"days\":1}"`) {
		t.Errorf("%s", b)
	}
	resp, err = http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","stream":true,"messages":[],"tool_choice":"required",`+tools+`}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Count(string(b), `"arguments"`) != 3 || !strings.Contains(string(b), `"name":"get_weather"`) || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		t.Errorf("%s", b)
	}
}

// TestEmbeddingsAsEnginesTakeThem: token-id inputs, base64 floats and
// fewer dimensions, as vLLM and OpenAI's API take them.
func TestEmbeddingsAsEnginesTakeThem(t *testing.T) {
	base := start(t, Options{Embed: true, Dims: 8})
	observe(t, base+"/health")
	post := func(body string) (int, string) {
		resp, err := http.Post(base+"/v1/embeddings", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, b := post(`{"model":"m","input":[[1,2,3],[4,5]]}`); code != 200 || !strings.Contains(b, `"prompt_tokens":5`) || strings.Count(b, `"embedding":[`) != 2 {
		t.Errorf("token ids: %d %s", code, b)
	}
	code, b := post(`{"model":"m","input":"x","encoding_format":"base64","dimensions":4}`)
	var e struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	json.Unmarshal([]byte(b), &e)
	raw, err := base64.StdEncoding.DecodeString(e.Data[0].Embedding)
	if code != 200 || err != nil || len(raw) != 4*4 {
		t.Errorf("base64, 4 dimensions: %d %s (%d bytes)", code, b, len(raw))
	}
	if code, _ := post(`{"model":"m","input":"x","dimensions":99}`); code != 400 {
		t.Errorf("too many dimensions: %d", code)
	}
}

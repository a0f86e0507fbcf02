package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gantryhq/gantry/internal/fit"
	"github.com/gantryhq/gantry/internal/hub/hubtest"
)

// sseEvents reads a server-sent event stream into (event, data) pairs.
func sseEvents(t *testing.T, body io.Reader) [][2]string {
	t.Helper()
	var out [][2]string
	ev := ""
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			out = append(out, [2]string{ev, strings.TrimPrefix(line, "data: ")})
			ev = ""
		}
	}
	return out
}

// TestHubDaemonDownloads: the daemon fits (GET /api/models/fit, this box
// as its scheduler has it) and downloads (POST /api/models/get): two
// requests for one repository share one download, which reserves no
// memory; its progress is on the event stream and the dashboard shows
// it as a bar; a gated repository is refused with the Hub's words.
func TestHubDaemonDownloads(t *testing.T) {
	s, commits := hubStandIn(t)
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
hub: {endpoint: "`+s.URL+`"}
models:
  idle: {engine: sim, memory: 1GiB}
`)
	// The fit, against the live scheduler.
	resp, err := http.Get(d.url + "/api/models/fit?repo=" + hubtest.TinyRepo + "&engine=vllm&context=256")
	if err != nil {
		t.Fatal(err)
	}
	var f fit.Result
	json.NewDecoder(resp.Body).Decode(&f)
	resp.Body.Close()
	if resp.StatusCode != 200 || f.Commit != commits[hubtest.TinyRepo] || len(f.Boxes) != 1 || !f.Boxes[0].Live ||
		f.Boxes[0].Verdicts[0].Verdict != fit.Fits || f.Boxes[0].Verdicts[0].Context != 256 || s.WeightsServed() != 0 {
		t.Fatalf("fit: %d %+v", resp.StatusCode, f)
	}
	resp, _ = http.Get(d.url + "/api/models/fit?repo=" + hubtest.LlamaRepo)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "hub_refused") || !strings.Contains(string(b), "is gated: accept its licence") {
		t.Errorf("gated fit: %d %s", resp.StatusCode, b)
	}
	// The dashboard, open during the download, shows it from the events.
	ctx := browser(t)
	step(t, d, ctx, chromedp.Navigate(d.url+"/"))
	step(t, d, ctx, chromedp.Poll[bool](`document.getElementById("conn").dataset.events === "open"`, chromedp.WithPollingTimeout(20*time.Second)))
	events, err := http.Get(d.url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	read := make(chan struct{})
	go func() {
		defer close(read)
		for _, e := range sseEvents(t, events.Body) {
			seen = append(seen, e[0]+" "+e[1])
		}
	}()
	s.Throttle(2 << 20)
	reserved := int64(-1)
	var wg sync.WaitGroup
	dones := make([]map[string]any, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(d.url+"/api/models/get", "application/json", strings.NewReader(`{"repo":"`+hubtest.TinyRepo+`"}`))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			for _, e := range sseEvents(t, resp.Body) {
				if e[0] == "download" && i == 0 && reserved < 0 && strings.Contains(e[1], `"type":"progress"`) {
					var st struct {
						Memory struct {
							Reserved int64 `json:"reserved_bytes"`
						}
					}
					json.Unmarshal([]byte(d.statusJSON()), &st)
					reserved = st.Memory.Reserved
				}
				if e[0] == "done" {
					json.Unmarshal([]byte(e[1]), &dones[i])
				}
			}
		}()
	}
	wg.Wait()
	shared := 0
	for i, dn := range dones {
		if dn["ok"] != true || !strings.HasSuffix(dn["dest"].(string), filepath.Join("models", "llama", "tiny-llama")) {
			t.Errorf("request %d: %v", i, dn)
		}
		if dn["shared"] == true {
			shared++
		}
	}
	if shared != 1 || reserved != 0 {
		t.Errorf("%d of 2 shared the download; %d bytes reserved during it", shared, reserved)
	}
	file, err := os.ReadFile(filepath.Join(d.home, "ai", "models", "llama", "tiny-llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if w := int64(len(file)) - 8 - int64(binary.LittleEndian.Uint64(file)); s.WeightsServed() != w {
		t.Errorf("%d weight bytes served for a file of %d", s.WeightsServed(), w)
	}
	step(t, d, ctx, chromedp.Poll[bool](`document.getElementById("pulls").innerText.includes("downloaded to")`, chromedp.WithPollingTimeout(20*time.Second)))
	events.Body.Close()
	<-read // the stream's events, to its end
	all := strings.Join(seen, "\n")
	if !strings.Contains(all, `"kind":"download"`) || !strings.Contains(all, `"phase":"downloading"`) || !strings.Contains(all, `"phase":"downloaded"`) {
		t.Errorf("events:\n%s", all)
	}
	resp, _ = http.Get(d.url + "/api/downloads")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"repo":"`+hubtest.TinyRepo+`"`) || !strings.Contains(string(b), `"commit":"`+commits[hubtest.TinyRepo]) {
		t.Errorf("/api/downloads: %s", b)
	}
}

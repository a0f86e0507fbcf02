package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gantryhq/gantry/internal/status"
	"github.com/gantryhq/gantry/internal/testbin"
)

// TestClientsSeeTheAddressesTheyUse: ps, start's ready line, ps --json and
// the dashboard show where a client reaches each model — its own listen,
// its slot's, the gateway by name, Ollama's API — never the engine's
// internal port as if it were one. The dashboard's tables fit a 1,400 px
// window with long names, a long diagnosis and a full activity table, and
// its "last minutes" charts draw requests made before the page opened
// (from the activity log).
func TestClientsSeeTheAddressesTheyUse(t *testing.T) {
	var modelAddr, slotAddr, ollamaAddr string
	d := startDaemonWith(t, func(string) string {
		modelAddr = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		slotAddr = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		ollamaAddr = fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
		return `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 4GiB}
ollama_api: {listen: "` + ollamaAddr + `"}
models:
  llama4-scout-17b-16e-instruct-nvfp4: {engine: sim, memory: 2GiB, mode: always-on, listen: "` + modelAddr + `", aliases: [default, scout-the-long-alias-for-agents]}
  qwen3-30b-a3b-instruct-2507-fp8: {engine: sim, memory: 2GiB, slot: private}
  deepseek-r1-distill-llama-8b-bf16: {engine: sim, memory: 2GiB, slot: private}
  broken-vllm-with-a-long-name-too: {engine: command, memory: 1GiB, command: [sh, -c, "echo \"ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be stored in KV cache (43520). Try increasing gpu_memory_utilization or decreasing max_model_len when initializing the engine.\"; exit 1"]}
slots:
  private: {listen: "` + slotAddr + `", default: qwen3-30b-a3b-instruct-2507-fp8}
`
	})
	scout := "llama4-scout-17b-16e-instruct-nvfp4"
	d.waitState(scout, "ready", 20*time.Second)
	d.gantry("start", "broken-vllm-with-a-long-name-too") // fails, with a long diagnosis

	// ps: the address column is the model's own address, the slot's, the gateway's.
	out, _ := d.gantry("ps")
	gw := strings.TrimPrefix(d.url, "http://")
	for _, want := range []string{"ADDRESS", scout + " ", modelAddr, slotAddr, gw, "slot private (http://" + slotAddr + "/v1)"} {
		if !strings.Contains(out, want) {
			t.Errorf("ps lacks %q:\n%s", want, out)
		}
	}
	// ps --json carries every door.
	var st status.Status
	js, _ := d.gantry("ps", "--json")
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Models {
		if m.Name != "qwen3-30b-a3b-instruct-2507-fp8" {
			continue
		}
		var urls []string
		for _, dr := range m.Doors {
			urls = append(urls, dr.Kind+" "+dr.URL+" "+dr.Model)
		}
		want := []string{"slot http://" + slotAddr + "/v1 " + m.Name, "gateway " + d.url + "/v1 " + m.Name, "ollama http://" + ollamaAddr + " " + m.Name}
		if strings.Join(urls, "|") != strings.Join(want, "|") {
			t.Errorf("doors of %s: %q, want %q", m.Name, urls, want)
		}
	}
	// start's ready line names the addresses, not the engine's port.
	out, code := d.gantry("start", "deepseek-r1-distill-llama-8b-bf16")
	if code != 0 || !strings.Contains(out, "deepseek-r1-distill-llama-8b-bf16 is ready (") ||
		!strings.Contains(out, "http://"+slotAddr+"/v1 (model deepseek-r1-distill-llama-8b-bf16)") || strings.Contains(out, "on port") {
		t.Errorf("start: exit %d\n%s", code, out)
	}

	// Requests before the page opens: the charts must show them.
	c := d.oai("")
	for i := 0; i < 3; i++ {
		if _, err := c.Chat.Completions.New(context.Background(), chatParams(scout, "Hallo")); err != nil {
			t.Fatal(err)
		}
	}
	post(t, d.url+"/v1/chat/completions", `{"model":"a-model-name-that-nobody-configured-anywhere-on-this-box","messages":[]}`)
	d.waitActivity(4, 10*time.Second)

	ctx := browser(t) // 1400 × 1100
	step(t, d, ctx, chromedp.Navigate(d.url+"/"))
	step(t, d, ctx, chromedp.WaitVisible(`tr[data-model="broken-vllm-with-a-long-name-too"] .badge.failed`))
	step(t, d, ctx, chromedp.Poll[bool](`document.querySelectorAll("#activity tbody tr").length >= 4`, chromedp.WithPollingTimeout(10*time.Second)))
	addr := step(t, d, ctx, chromedp.Text(`tr[data-model="`+scout+`"] td.addr`))
	if addr != modelAddr {
		t.Errorf("the dashboard's address of %s: %q, want %q", scout, addr, modelAddr)
	}
	ep := step(t, d, ctx, chromedp.Text(`#endpoints`))
	for _, want := range []string{"http://" + modelAddr + "/v1", "http://" + slotAddr + "/v1", "http://" + ollamaAddr} {
		if !strings.Contains(ep, want) {
			t.Errorf("the endpoints table lacks %s:\n%s", want, ep)
		}
	}
	// Every table fits the window: nothing wider than its panel, no
	// horizontal scrolling of the page.
	over := step(t, d, ctx, chromedp.Evaluate[string](`(() => {
		const bad = [];
		if (document.documentElement.scrollWidth > window.innerWidth) bad.push("page " + document.documentElement.scrollWidth + "px");
		for (const tb of document.querySelectorAll("table")) {
			const box = tb.parentElement;
			if (tb.scrollWidth > box.clientWidth + 1 || tb.getBoundingClientRect().right > window.innerWidth)
				bad.push("#" + tb.id + " " + tb.scrollWidth + "px in " + box.clientWidth + "px");
		}
		return bad.join(", ");
	})()`))
	if over != "" {
		t.Errorf("at 1400 px, too wide: %s", over)
	}
	// The charts drew the requests made before the page opened.
	step(t, d, ctx, chromedp.Poll[bool](`document.getElementById("legend").textContent.includes("`+scout+`")`, chromedp.WithPollingTimeout(10*time.Second)))
}

// waitActivity waits until the activity log has n records.
func (d *daemon) waitActivity(n int, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, _ := d.gantry("activity", "-n", "100", "--json")
		var res struct {
			Records []json.RawMessage `json:"records"`
		}
		if json.Unmarshal([]byte(out), &res) == nil && len(res.Records) >= n {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the activity log has not %d records after %s:\n%s", n, timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardInChromium drives the dashboard in headless Chromium as a
// user would: sign in, start a model with its button, see it turn ready,
// read its log, switch a slot, send a chat and find it in the activity
// table and the usage of its key; and saves a screenshot.
func TestDashboardInChromium(t *testing.T) {
	d := startDaemon(t, `
listen: LISTEN
root: ROOT
memory: {total: 64GiB, reserve: 8GiB}
auth: {api_keys: [sk-user], admin_keys: [sk-admin]}
slots:
  private: {port: PORTSLOT, min_residency: 100ms}
models:
  chat: {engine: sim, memory: 12GiB, mode: always-on, aliases: [default], args: [--flavor, sglang, --itl, 30ms]}
  demo: {engine: sim, memory: 8GiB, args: [--load-time, 500ms, --itl, 20ms]}
  qwen: {engine: sim, memory: 16GiB, slot: private}
  r1: {engine: sim, memory: 16GiB, slot: private}
profiles:
  hybrid: {always_on: [chat]}
`)
	d.waitState("chat", "ready", 20*time.Second)
	ctx := browser(t)

	row := func(m string) string { return `tr[data-model="` + m + `"]` }
	poll := func(js string) chromedp.Action[bool] {
		return chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))
	}
	step(t, d, ctx, chromedp.Navigate(d.url+"/"))
	// Keys are set: the page asks for one.
	step(t, d, ctx, chromedp.WaitVisible(`#loginform`))
	step(t, d, ctx, chromedp.SendKeys(`#key`, "sk-admin"))
	step(t, d, ctx, chromedp.Click(`#loginform button`)) // a click fires onsubmit; form.submit() would not
	step(t, d, ctx, chromedp.WaitVisible(row("demo")+` .badge.stopped`))
	// Start a model with its button and watch it turn ready.
	step(t, d, ctx, chromedp.Click(row("demo")+` button[data-act="start"]`))
	step(t, d, ctx, chromedp.WaitVisible(row("demo")+` .badge.ready`))
	// Its log, live.
	step(t, d, ctx, chromedp.SetValue(`#logmodel`, "demo"))
	step(t, d, ctx, chromedp.Evaluate[bool](`document.getElementById("logmodel").dispatchEvent(new Event("change"))`))
	step(t, d, ctx, poll(`document.getElementById("log").textContent.includes("sim: ready at")`))
	logText := step(t, d, ctx, chromedp.Text(`#log`))
	// Switch the slot to r1, and back.
	step(t, d, ctx, chromedp.Click(row("r1")+` button[data-act="switch"]`))
	step(t, d, ctx, chromedp.WaitVisible(row("r1")+` .badge.ready`))
	step(t, d, ctx, chromedp.Click(row("qwen")+` button[data-act="switch"]`))
	step(t, d, ctx, chromedp.WaitVisible(row("qwen")+` .badge.ready`))
	step(t, d, ctx, chromedp.WaitVisible(row("r1")+` .badge.stopped`))
	// A chat through the gateway, streamed into the page.
	step(t, d, ctx, chromedp.SetValue(`#chatmodel`, "chat"))
	step(t, d, ctx, chromedp.Click(`#send`))
	step(t, d, ctx, poll(`document.getElementById("chatstats").textContent.includes("tokens/s")`))
	stats := step(t, d, ctx, chromedp.Text(`#chatstats`))
	answer := step(t, d, ctx, chromedp.Text(`#answer`))
	// The chat is in today's activity, with the engine's token count.
	step(t, d, ctx, poll(`[...document.querySelectorAll("#totals tbody tr")].some(tr => tr.cells[0].textContent === "chat" && tr.cells[4].textContent === "16")`))
	step(t, d, ctx, poll(`[...document.querySelectorAll("#activity tbody tr")].some(tr => tr.cells[1].textContent === "chat" && tr.cells[5].textContent.endsWith("/16"))`))
	// And in today's usage of the key the page signed in with, by its name.
	step(t, d, ctx, poll(`[...document.querySelectorAll("#usage tbody tr")].some(tr => tr.cells[0].textContent === "admin key 1" && tr.cells[4].textContent === "16")`))
	// Let the charts draw with the requests in them.
	step(t, d, ctx, chromedp.Sleep(1200*time.Millisecond))
	if !strings.Contains(logText, "sim: ready at") || !strings.Contains(answer, "Hallo") || !strings.Contains(stats, "16 tokens") {
		t.Errorf("log %q\nanswer %q\nstats %q", logText, answer, stats)
	}
	png := step(t, d, ctx, chromedp.FullScreenshot(100)) // quality 100 gives a PNG
	out := filepath.Join(t.TempDir(), "dashboard.png")
	if dir := os.Getenv("GANTRY_SCREENSHOT_DIR"); dir != "" {
		out = filepath.Join(dir, "dashboard.png")
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}

// step runs one browser action, failing the test with gantry's output.
func step[T any](t *testing.T, d *daemon, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("dashboard: %v\n%s", err, d.out.String())
	}
	return v
}

package gateway

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gantryhq/gantry/internal/activity"
)

// formEngine parses an upload as the engine would and answers with the
// values of its "model" fields and its part count.
func formEngine(hits *atomic.Int32, gate chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 && gate != nil {
			<-gate
		}
		if err := r.ParseMultipartForm(64 << 20); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		n := len(r.MultipartForm.Value) + len(r.MultipartForm.File)
		fmt.Fprintf(w, "model=%q fields=%d", r.MultipartForm.Value["model"], n)
	})
}

type part struct {
	header textproto.MIMEHeader
	body   string
}

func field(name, value string) part {
	return part{textproto.MIMEHeader{"Content-Disposition": {`form-data; name="` + name + `"`}}, value}
}

// upload posts a multipart body of parts to url.
func upload(t *testing.T, url string, parts ...part) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		w, err := mw.CreatePart(p.header)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p.body)
	}
	mw.Close()
	resp, err := http.Post(url, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestUploadLimits: an upload of more than 1,000 parts (450,000 tiny
// ones cost 11.7 s of CPU) or with a part's headers over 16 KiB is
// refused with the limit's name before any engine sees it; 1,000 parts
// pass.
func TestUploadLimits(t *testing.T) {
	var hits atomic.Int32
	gw := testGateway(t, "models:\n  whisper: {engine: sim, memory: 1GiB, port: ENGINE_whisper}\n",
		map[string]http.Handler{"whisper": formEngine(&hits, nil)}, nil)
	url := gw + "/v1/audio/transcriptions"
	parts := []part{field("model", "whisper")}
	for i := 1; i < 1000; i++ {
		parts = append(parts, field(fmt.Sprintf("f%d", i), "x"))
	}
	if code, got := upload(t, url, parts...); code != 200 || got != `model=["whisper"] fields=1000` {
		t.Errorf("1000 parts: %d %s", code, got)
	}
	code, got := upload(t, url, append(parts, field("one-more", "x"))...)
	if code != 413 || !strings.Contains(got, "too_many_parts") || !strings.Contains(got, "1000 parts") {
		t.Errorf("1001 parts: %d %s", code, got)
	}
	big := field("file", "x")
	big.header.Set("X-Padding", strings.Repeat("p", 20<<10))
	code, got = upload(t, url, field("model", "whisper"), big)
	if code != 413 || !strings.Contains(got, "part_header_too_large") || !strings.Contains(got, "16KiB") {
		t.Errorf("a 20 KiB part header: %d %s", code, got)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the engine got %d uploads, want the one within the limits", n)
	}
}

// TestUploadSpoolCountsTowardMaxBodyTotal: an upload spooled to a file
// (on tmpfs, memory) holds its room in max_body_total until it is done:
// a second one that would go over waits its turn (503 busy).
func TestUploadSpoolCountsTowardMaxBodyTotal(t *testing.T) {
	var hits atomic.Int32
	gate := make(chan struct{})
	gw := testGateway(t, "max_body: 1MiB\nmax_body_total: 1MiB\nmodels:\n  whisper: {engine: sim, memory: 1GiB, port: ENGINE_whisper}\n",
		map[string]http.Handler{"whisper": formEngine(&hits, gate)}, nil)
	url := gw + "/v1/audio/transcriptions"
	audio := part{textproto.MIMEHeader{"Content-Disposition": {`form-data; name="file"; filename="a.wav"`}, "Content-Type": {"audio/wav"}},
		strings.Repeat("a", 700<<10)}
	first := make(chan string)
	go func() {
		code, got := upload(t, url, field("model", "whisper"), audio)
		first <- fmt.Sprint(code, " ", got)
	}()
	for hits.Load() == 0 { // the first is spooled and at the engine
		runtime.Gosched()
	}
	code, got := upload(t, url, field("model", "whisper"), audio)
	close(gate)
	if code != 503 || !strings.Contains(got, "busy") {
		t.Errorf("a second 700 KiB upload under max_body_total 1MiB: %d %s", code, got)
	}
	if got := <-first; got != `200 model=["whisper"] fields=2` {
		t.Errorf("the first: %s", got)
	}
	if code, got := upload(t, url, field("model", "whisper"), audio); code != 200 {
		t.Errorf("after the first was done: %d %s", code, got)
	}
}

// TestUploadModelIsUnambiguous: an upload that names the model twice, in
// another case, or in a part header two parsers read differently is
// refused (400) — gantry and the engine must serve the same model — and
// the part headers the engine gets are the ones gantry read.
func TestUploadModelIsUnambiguous(t *testing.T) {
	var hits atomic.Int32
	gw := testGateway(t, "models:\n  whisper: {engine: sim, memory: 1GiB, port: ENGINE_whisper}\n",
		map[string]http.Handler{"whisper": formEngine(&hits, nil)}, nil)
	url := gw + "/v1/audio/transcriptions"
	dup := part{textproto.MIMEHeader{"Content-Disposition": {`form-data; name="file"; name="model"`}}, "big"}
	for name, parts := range map[string][]part{
		"twice":          {field("model", "whisper"), field("model", "big")},
		"another case":   {field("model", "whisper"), field("Model", "big")},
		"two names":      {field("model", "whisper"), dup},
		"not form-data":  {field("model", "whisper"), {textproto.MIMEHeader{"Content-Disposition": {`attachment; name="model"`}}, "big"}},
		"no disposition": {field("model", "whisper"), {textproto.MIMEHeader{"Content-Type": {"text/plain"}}, "big"}},
	} {
		code, got := upload(t, url, parts...)
		if code != 400 || !strings.Contains(got, "ambiguous_model") && !strings.Contains(got, "bad_part") {
			t.Errorf("%s: %d %s", name, code, got)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the engine got %d ambiguous uploads", n)
	}
}

// TestLargeBodyRewrittenInPieces: a body over spliceMin sent to an alias
// in a stream that did not ask for usage reaches the engine as the small
// one does — the served name, the usage asked for, every other byte — but
// read in pieces around the changes, not copied.
func TestLargeBodyRewrittenInPieces(t *testing.T) {
	got := make(chan []byte, 2)
	engine := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: [DONE]\n\n")
	})
	gw := testGatewayWith(t, "models:\n  m: {engine: sim, memory: 1GiB, port: ENGINE_m, aliases: [a]}\n", map[string]http.Handler{"m": engine}, nil,
		func(g *Gateway) { g.SetActivity(discardLog{}, nil) }) // the log on: gantry asks for usage
	for _, size := range []int{100, 3 << 20} {
		content := strings.Repeat("x", size)
		body := `{ "model": "a", "stream": true, "messages": [{"role":"user","content":"` + content + `"}]}`
		code, _, _ := post(t, gw+"/v1/chat/completions", body)
		want := `{"stream_options":{"include_usage":true}, "model": "m", "stream": true, "messages": [{"role":"user","content":"` + content + `"}]}`
		if b := <-got; code != 200 || string(b) != want {
			t.Errorf("%d bytes: %d, the engine got %d bytes: %.120s", size, code, len(b), b)
		}
	}
}

type discardLog struct{}

func (discardLog) Add(activity.Pending) {}

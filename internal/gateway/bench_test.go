package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/sched"
)

var smallBody = []byte(`{"model":"scout","messages":[{"role":"user","content":"Hallo, wie geht es dir heute?"}],"max_tokens":16,"stream":true}`)

// A long conversation with the model key last: the scanner must walk it all.
var bigBody = []byte(`{"messages":[` + strings.Repeat(`{"role":"user","content":"`+strings.Repeat("lorem ipsum \\\"dolor\\\" sit amet ", 40)+`"},`, 200) +
	`{"role":"user","content":"x"}],"temperature":0.7,"model":"scout"}`)

func BenchmarkModelFieldSmall(b *testing.B) {
	b.SetBytes(int64(len(smallBody)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if m, _, _, _, err := ModelField(smallBody); err != nil || m != "scout" {
			b.Fatal(m, err)
		}
	}
}

func BenchmarkModelFieldLarge(b *testing.B) {
	b.SetBytes(int64(len(bigBody)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if m, _, _, _, err := ModelField(bigBody); err != nil || m != "scout" {
			b.Fatal(m, err)
		}
	}
}

// chunkReader returns one SSE event per Read, as an engine's stream does.
type chunkReader struct {
	ev []byte
	n  int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.n == 0 {
		return 0, io.EOF
	}
	c.n--
	return copy(p, c.ev), nil
}

func (c *chunkReader) Close() error { return nil }

// BenchmarkSSERelay relays one stream of 64 events (a token each) to a
// recorder that flushes: the per-event cost of the gateway's stream path.
func BenchmarkSSERelay(b *testing.B) {
	g := New(nil, nil, nil)
	ev := []byte(`data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}` + "\n\n")
	req := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	lease := &sched.Lease{Model: &config.Model{Name: "m"}}
	b.ReportAllocs()
	b.SetBytes(int64(64 * len(ev)))
	for i := 0; i < b.N; i++ {
		w := &recorder{ResponseWriter: httptest.NewRecorder()}
		resp := &http.Response{Body: &chunkReader{ev: ev, n: 64}}
		g.copyBody(w, req, resp, lease, true)
		if w.chunks != 64 {
			b.Fatal(w.chunks)
		}
	}
}

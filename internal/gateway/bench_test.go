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
		w := &request{ResponseWriter: httptest.NewRecorder(), r: req}
		resp := &http.Response{Body: &chunkReader{ev: ev, n: 64}}
		g.copyBody(w, resp, lease, true)
		if w.events != 64 {
			b.Fatal(w.events)
		}
	}
}

// randomChunks returns the stream in the pieces the fuzzer chose.
type randomChunks struct {
	data  []byte
	sizes []byte
}

func (r *randomChunks) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = int(r.sizes[0])%len(r.data) + 1
		r.sizes = r.sizes[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func (r *randomChunks) Close() error { return nil }

// FuzzSSERelay: whatever an engine sends, in whatever pieces, the client
// receives the same bytes in the same order.
func FuzzSSERelay(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"), []byte{3, 7, 1})
	f.Add([]byte(strings.Repeat("data: x\n\n", 100)), []byte{0})
	g := New(nil, nil, nil)
	req := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	lease := &sched.Lease{Model: &config.Model{Name: "m"}}
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		rec := httptest.NewRecorder()
		w := &request{ResponseWriter: rec, r: req}
		g.copyBody(w, &http.Response{Body: &randomChunks{data: append([]byte(nil), data...), sizes: sizes}}, lease, true)
		if got := rec.Body.Bytes(); string(got) != string(data) {
			t.Fatalf("relayed %q, sent %q", got, data)
		}
	})
}

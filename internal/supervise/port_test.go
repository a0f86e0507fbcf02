package supervise

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/status"
)

// TestStartRefusesAPortSomethingAnswers: a server already answers at the
// engine's port (here one of this process; in the suite, the benchmark's
// engine of the same name, whose port came from the same port_range). The
// start is refused, naming the holder, and no engine is launched. Before,
// the foreign server passed the readiness probe in the engine's place and
// got the model's requests: 50 cold requests answered by another model.
// Once the port is free, the engine starts.
func TestStartRefusesAPortSomethingAnswers(t *testing.T) {
	p, _ := newSim(t, "    args: [--load-time, 300ms]\n", Options{})
	u, err := url.Parse(p.Launch().BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"ok"}`) // healthy, whatever is asked
	})}
	go srv.Serve(ln)
	err = p.Start(context.Background())
	want := fmt.Sprintf("port %s is taken: pid %d (", u.Port(), os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "models.m.port") {
		t.Fatalf("start with the port answered by another server: %v; want an error with %q", err, want)
	}
	if st := p.Status(); st.State != status.Failed || st.PID != 0 {
		t.Errorf("status %+v: want failed, no engine", st)
	}
	if tail := strings.Join(p.Log().Tail(10), "\n"); strings.Contains(tail, "starting m") || !strings.Contains(tail, "is taken") {
		t.Errorf("the log: an engine launched, or no word of the port:\n%s", tail)
	}
	srv.Close()
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("start once the port is free: %v", err)
	}
	if st := p.Status(); st.State != status.Ready || st.PID == 0 {
		t.Errorf("status %+v: want ready with its engine", st)
	}
}

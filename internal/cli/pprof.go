package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// profiler serves Go's profiles at the paths net/http/pprof uses, which
// `go tool pprof` and `go tool trace` read: /debug/pprof/profile (CPU,
// ?seconds=N, 30 by default), /debug/pprof/trace, /debug/pprof/<profile>
// (heap, allocs, goroutine, block, mutex, threadcreate; ?debug=N for text,
// ?gc=1 to collect first), /debug/pprof/cmdline and /debug/pprof/symbol,
// and a plain index. net/http/pprof itself is not linked: its index page's
// html/template and its delta profiles' parser made gantry's binary 0.6 MB
// and its idle RSS 0.45 MB larger, for a flag used while debugging. A delta
// of two snapshots (?seconds= on a non-CPU profile) is refused with what to
// do instead.
func profiler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "profiles: profile (CPU, ?seconds=30), trace (?seconds=1), cmdline, symbol")
		for _, p := range pprof.Profiles() {
			fmt.Fprintf(w, "%s (%d; ?debug=1 for text)\n", p.Name(), p.Count())
		}
	})
	mux.HandleFunc("GET /debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
		d, ok := seconds(w, r, 30)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
		if err := pprof.StartCPUProfile(w); err != nil {
			http.Error(w, "could not start the CPU profile: "+err.Error(), http.StatusInternalServerError)
			return
		}
		wait(r, d)
		pprof.StopCPUProfile()
	})
	mux.HandleFunc("GET /debug/pprof/trace", func(w http.ResponseWriter, r *http.Request) {
		d, ok := seconds(w, r, 1)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
		if err := trace.Start(w); err != nil {
			http.Error(w, "could not start the trace: "+err.Error(), http.StatusInternalServerError)
			return
		}
		wait(r, d)
		trace.Stop()
	})
	mux.HandleFunc("GET /debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, strings.Join(os.Args, "\x00"))
	})
	mux.HandleFunc("GET /debug/pprof/symbol", symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", symbol)
	mux.HandleFunc("GET /debug/pprof/{name}", func(w http.ResponseWriter, r *http.Request) {
		p := pprof.Lookup(r.PathValue("name"))
		if p == nil {
			http.Error(w, "no such profile; /debug/pprof/ lists them", http.StatusNotFound)
			return
		}
		if r.FormValue("seconds") != "" {
			http.Error(w, "a delta of two snapshots is not served here: take the profile twice and compare with go tool pprof -diff_base", http.StatusBadRequest)
			return
		}
		debug, _ := strconv.Atoi(r.FormValue("debug"))
		if r.FormValue("gc") != "" && p.Name() == "heap" {
			runtime.GC()
		}
		if debug > 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Disposition", `attachment; filename="`+p.Name()+`"`)
		}
		p.WriteTo(w, debug) //nolint:errcheck // the client went away
	})
	return mux
}

// seconds is the request's ?seconds=, def when absent; a bad value is
// answered with 400.
func seconds(w http.ResponseWriter, r *http.Request, def int) (time.Duration, bool) {
	s := r.FormValue("seconds")
	if s == "" {
		return time.Duration(def) * time.Second, true
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || n > 3600 {
		http.Error(w, "seconds: a number of seconds, up to 3600", http.StatusBadRequest)
		return 0, false
	}
	return time.Duration(n * float64(time.Second)), true
}

// wait waits d, or less when the client goes away.
func wait(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// symbol answers pprof's symbol lookups as net/http/pprof does: GET says
// symbols are served; a POST of addresses joined by '+' gets each
// address and its function's name.
func symbol(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b bytes.Buffer
	b.WriteString("num_symbols: 1\n")
	in := bufio.NewReader(http.MaxBytesReader(w, r.Body, 1<<20))
	if r.Method == http.MethodGet {
		in = bufio.NewReader(strings.NewReader(r.URL.RawQuery))
	}
	for {
		word, err := in.ReadString('+')
		if pc, perr := strconv.ParseUint(strings.TrimSuffix(word, "+"), 0, 64); perr == nil && pc != 0 {
			if f := runtime.FuncForPC(uintptr(pc)); f != nil {
				fmt.Fprintf(&b, "%#x %s\n", pc, f.Name())
			}
		}
		if err != nil {
			break
		}
	}
	w.Write(b.Bytes()) //nolint:errcheck // the client went away
}

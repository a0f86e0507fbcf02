// Package check runs the seed's "Sanity Tests": for every model the
// engine's health and a one-token chat completion (or a one-input
// embedding), and an HTTP check of each auxiliary service, with latencies.
package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/launch"
	"github.com/gantryhq/gantry/internal/sched"
	"github.com/gantryhq/gantry/internal/status"
)

// Options for Run.
type Options struct {
	// All starts on-demand models that are not running, to check them too.
	All bool
}

// Run checks every configured model and service of s, in parallel.
func Run(ctx context.Context, s *sched.Scheduler, o Options) status.CheckReport {
	cfg := s.Config()
	st := s.Status()
	var mu sync.Mutex
	var wg sync.WaitGroup
	rep := status.CheckReport{OK: true}
	add := func(it status.CheckItem) {
		mu.Lock()
		defer mu.Unlock()
		rep.Items = append(rep.Items, it)
		if it.Status == "fail" {
			rep.OK = false
		}
	}
	for _, ms := range st.Models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			add(checkModel(ctx, s, cfg, ms, o))
		}()
	}
	for _, name := range sortedKeys(cfg.Services) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			add(checkService(ctx, name, cfg.Services[name].URL))
		}()
	}
	wg.Wait()
	slices.SortFunc(rep.Items, func(a, b status.CheckItem) int {
		if a.Kind != b.Kind {
			return cmpStr(a.Kind, b.Kind)
		}
		return cmpStr(a.Name, b.Name)
	})
	return rep
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

var client = &http.Client{Timeout: 60 * time.Second}

func checkModel(ctx context.Context, s *sched.Scheduler, cfg *config.Config, ms status.ModelStatus, o Options) status.CheckItem {
	it := status.CheckItem{Name: ms.Name, Kind: "model", Diagnosis: ms.Diagnosis}
	m := cfg.Models[ms.Name]
	switch {
	case ms.State == status.Failed:
		it.Status, it.Detail = "fail", "failed: "+ms.Reason
		return it
	case ms.State != status.Ready && !ms.AlwaysOn && !o.All:
		it.Status, it.Detail = "skip", fmt.Sprintf("%s, on demand (check --all starts it)", ms.State)
		return it
	case ms.State != status.Ready && ms.AlwaysOn && !o.All:
		it.Status, it.Detail = "fail", fmt.Sprintf("always-on but %s: %s", ms.State, ms.Reason)
		return it
	}
	lease, err := s.Acquire(ctx, ms.Name)
	if err != nil {
		it.Status, it.Detail = "fail", err.Error()
		it.Diagnosis = s.Status().Model(ms.Name).Diagnosis
		return it
	}
	defer lease.Release()
	health, _ := launch.Health(m)
	began := time.Now()
	r := engine.Probe(ctx, client, lease.BaseURL, health)
	it.HealthMS = ms3(time.Since(began))
	if !r.Ready {
		it.Status, it.Detail = "fail", fmt.Sprintf("health: %s %s", r.Phase, r.Detail)
		return it
	}
	var path string
	var body any
	if s.IsEmbedding(ms.Name) {
		it.Test, path = "embedding", "/v1/embeddings"
		body = map[string]any{"model": m.Name, "input": "Hallo"}
	} else {
		it.Test, path = "chat", "/v1/chat/completions"
		body = map[string]any{"model": m.Name, "max_tokens": 1, "messages": []any{map[string]string{"role": "user", "content": "Hallo"}}}
	}
	began = time.Now()
	err = postOK(ctx, lease.BaseURL+path, body)
	it.TestMS = ms3(time.Since(began))
	if err != nil {
		it.Status, it.Detail = "fail", it.Test+": "+err.Error()
		return it
	}
	it.Status = "ok"
	return it
}

func ms3(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// postOK posts JSON and wants a 200 whose body is JSON.
func postOK(ctx context.Context, url string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %.200s", resp.Status, rb)
	}
	if !json.Valid(rb) {
		return fmt.Errorf("the answer is not JSON: %.200s", rb)
	}
	return nil
}

func checkService(ctx context.Context, name, raw string) status.CheckItem {
	it := status.CheckItem{Name: name, Kind: "service", Test: "http"}
	shown := config.RedactURL(raw) // a password in the URL is not shown
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		it.Status, it.Detail = "fail", fmt.Sprintf("%s: %v", shown, bareURLError(err))
		return it
	}
	began := time.Now()
	resp, err := client.Do(req)
	it.HealthMS = ms3(time.Since(began))
	if err != nil {
		it.Status, it.Detail = "fail", fmt.Sprintf("%s is not reachable: %v", shown, bareURLError(err))
		return it
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		it.Status, it.Detail = "fail", fmt.Sprintf("%s answered %s", shown, resp.Status)
		return it
	}
	it.Status, it.Detail = "ok", resp.Status
	return it
}

// bareURLError is err without the URL a *url.Error wraps it in (which
// shows the URL's user name).
func bareURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

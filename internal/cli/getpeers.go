package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/fetch"
	"github.com/gantryhq/gantry/internal/fit"
)

// peerNames is --peers: names under peers:, or all of them.
func peerNames(c *config.Config, list string) ([]string, error) {
	if list == "" {
		return nil, nil
	}
	if list == "all" {
		return c.PeerNames(), nil
	}
	var out []string
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if c.Peers[n] == nil {
			return nil, usagef("--peers: %q is not under peers: (%s)", n, strings.Join(c.PeerNames(), ", "))
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// copyToPeers has each peer's gantry copy the commit this box just
// fetched from this box (POST /api/models/get with "from": "peer"), over
// the link rather than from the Hub, resumable and verified as any get;
// it follows each copy's events to its end.
func (f *getFlags) copyToPeers(ctx context.Context, e *env, c *config.Config, res *fit.Result, names []string) error {
	var failed []string
	for _, name := range names {
		p := c.Peers[name]
		body, _ := json.Marshal(map[string]any{"repo": res.Repo + "@" + res.Commit, "from": "peer", "name": res.Name,
			"engine": f.engine, "quant": res.Quant, "include": f.include, "exclude": f.exclude, "to": f.to})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(p.URL, "/")+"/api/models/get", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if p.Token != "" {
			req.Header.Set("Authorization", "Bearer "+p.Token)
		}
		fmt.Fprintf(e.stderr, "%s: copying %s@%s from this box\n", name, res.Repo, short(res.Commit))
		if err := followCopy(e, name, req); err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("the copy to %s failed (run get --peers again: it resumes)", strings.Join(failed, ", "))
	}
	return nil
}

// followCopy sends the copy request and prints its progress until done.
func followCopy(e *env, name string, req *http.Request) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b struct {
			Error struct{ Message string } `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&b) //nolint:errcheck // the status says enough without it
		return fmt.Errorf("%s: %s", resp.Status, b.Error.Message)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			event = ev
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		switch event {
		case "download":
			var ev fetch.Event
			if json.Unmarshal([]byte(data), &ev) == nil && (ev.Type == fetch.EventVerified || ev.Type == fetch.EventPlan) {
				fmt.Fprintf(e.stderr, "%s: %s %s%s\n", name, ev.Type, ev.Path, ev.Msg)
			}
		case "done":
			var d struct {
				OK    bool          `json:"ok"`
				Error string        `json:"error"`
				Dest  string        `json:"dest"`
				Res   *fetch.Result `json:"result"`
			}
			json.Unmarshal([]byte(data), &d) //nolint:errcheck // a broken line fails below
			if !d.OK {
				return fmt.Errorf("%s", d.Error)
			}
			fmt.Fprintf(e.stdout, "%s: %s (%s copied)\n", name, d.Dest, config.FormatBytes(d.Res.Fetched))
			return nil
		}
	}
	return fmt.Errorf("the copy's answer ended early: %v", sc.Err())
}

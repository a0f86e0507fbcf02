package container

import (
	"context"
	"fmt"

	"github.com/gantryhq/gantry/internal/status"
	"github.com/moby/moby/client"
)

// Pull fetches ref from its registry, calling progress (which may be nil)
// as the layers come in.
func (c *Client) Pull(ctx context.Context, ref string, progress func(status.PullProgress)) error {
	resp, err := c.c.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return Explain(err)
	}
	defer resp.Close()
	type layer struct{ done, total int64 }
	layers := map[string]*layer{}
	order := []string{}
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return Explain(err)
		}
		if m.Error != nil {
			return fmt.Errorf("pull %s: %s", ref, m.Error.Message)
		}
		if m.ID != "" && m.Progress != nil {
			l := layers[m.ID]
			if l == nil {
				l = &layer{}
				layers[m.ID] = l
				order = append(order, m.ID)
			}
			if m.Progress.Total > 0 {
				l.total = m.Progress.Total
			}
			switch {
			case m.Status == "Downloading":
				l.done = m.Progress.Current
			case m.Status == "Download complete" || m.Status == "Pull complete":
				l.done = l.total
			}
		}
		if m.ID != "" && (m.Status == "Download complete" || m.Status == "Pull complete" || m.Status == "Already exists") {
			if l := layers[m.ID]; l != nil {
				l.done = l.total
			}
		}
		if progress != nil {
			p := status.PullProgress{Image: ref, Layers: len(order), Status: m.Status}
			for _, id := range order {
				p.Done += layers[id].done
				p.Total += layers[id].total
			}
			progress(p)
		}
	}
	if progress != nil {
		p := status.PullProgress{Image: ref, Layers: len(order), Status: "done", Finished: true}
		for _, id := range order {
			p.Done += layers[id].total
			p.Total += layers[id].total
		}
		progress(p)
	}
	return nil
}

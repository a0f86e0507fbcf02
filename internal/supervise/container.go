package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/container"
	"github.com/gantryhq/gantry/internal/progress"
	"github.com/gantryhq/gantry/internal/status"
)

// A docker-runtime engine runs as a container through the Docker Engine
// API: created and started detached and labelled (model, the launch's
// hash, gantry's root), its output followed into the model's log, its end
// awaited through the API. Labels are its identity: a restarted gantry
// finds it by them (adoptContainer).

func (p *Process) labels() map[string]string {
	return map[string]string{container.LabelModel: p.opts.Key, container.LabelSpec: p.spec, container.LabelRoot: p.opts.Root}
}

// spawnContainer starts the engine's container and the goroutines that
// follow its output and await its end.
func (p *Process) spawnContainer(r *run) error {
	spec := p.launch.Container
	fail := func(err error) error {
		r.exitErr = err
		close(r.exited)
		return err
	}
	if p.opts.Docker == nil {
		return fail(fmt.Errorf("%s runs in a container (runtime: docker) but gantry has no Docker daemon: %w", p.model.Name, container.ErrDaemon))
	}
	p.log.Mark("starting container %s of %s (start %d): image %s", spec.Name, p.model.Name, p.starts, spec.Image)
	for _, m := range spec.Mounts {
		if !m.ReadOnly { // the engine's cache: docker run would create it, the API does not
			if err := os.MkdirAll(m.Source, 0o755); err != nil {
				return fail(fmt.Errorf("container %s: %w", spec.Name, err))
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.model.StartTimeout.D())
	defer cancel()
	pulled := func(pl status.PullProgress) {
		st := progress.Step{Phase: progress.Pulling, Fraction: -1}
		if pl.Total > 0 {
			st.Fraction = float64(pl.Done) / float64(pl.Total)
		}
		p.prog.Set(st)
		if pl.Finished {
			p.log.Mark("pulled %s: %d bytes in %d layers", pl.Image, pl.Total, pl.Layers)
		}
	}
	started, err := p.opts.Docker.Start(ctx, spec, p.labels(), pulled)
	if err != nil {
		p.log.Mark("the container did not start: %v", err)
		return fail(fmt.Errorf("container %s: %w", spec.Name, err))
	}
	p.log.Mark("container %s started (%s, image %s %s/%s): command after the entrypoint %q %q",
		shortID(started.ID), spec.Name, spec.Image, started.Image.OS, started.Image.Architecture, started.Image.Entrypoint, config.RedactArgv(started.Cmd))
	r.ctr = started.ID
	p.watchContainer(r, time.Time{})
	return nil
}

// followDrain bounds the wait for a container's last output after its end.
const followDrain = 2 * time.Second

// watchContainer follows the container's output (from since) into the log
// and closes r.exited when it ends, with how it ended.
func (p *Process) watchContainer(r *run, since time.Time) {
	follow, stop := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		if err := p.opts.Docker.Follow(follow, r.ctr, since, p.log); err != nil {
			p.logger.Debug("container output not followed", "err", err)
		}
	}()
	go func() {
		defer stop()
		ex := p.opts.Docker.Wait(context.Background(), r.ctr)
		// The output stream ends by itself once the container has: its
		// last lines — often the reason it ended — must be in the log
		// before the end is reported and diagnosed. A daemon that keeps the
		// stream open is not waited for long.
		select {
		case <-followed:
		case <-time.After(followDrain):
		}
		if ex.OOMKilled {
			p.log.Mark("the container was OOM-killed (exit code %d)", ex.Code)
		}
		r.exitErr = errors.New(ex.String())
		close(r.exited)
	}()
}

// stopContainer stops and removes the container: SIGTERM, SIGKILL after
// grace (the daemon's own stop), then waits for its end to be seen.
func (p *Process) stopContainer(ctx context.Context, r *run, grace time.Duration) error {
	err := p.opts.Docker.Stop(ctx, r.ctr, grace)
	select {
	case <-r.exited:
	case <-time.After(grace + 10*time.Second):
		p.logger.Error("container did not end after its stop", "container", shortID(r.ctr))
	}
	return err
}

// adoptContainer finds the container a previous gantry left for this
// model by its labels; a running one launched as the config would launch
// it now is taken over. Anything else is left to SweepContainers.
func (p *Process) adoptContainer(ctx context.Context) (found container.Found, err error) {
	if p.opts.Docker == nil {
		return found, ErrNothingToAdopt
	}
	ours, err := p.opts.Docker.Ours(ctx, p.opts.Root)
	if err != nil {
		return found, err
	}
	for _, f := range ours {
		if f.Model != p.opts.Key {
			continue
		}
		switch {
		case !f.Running:
			return found, fmt.Errorf("its container %s is not running", shortID(f.ID))
		case f.Spec != p.spec:
			return found, fmt.Errorf("its container %s was launched with another config", shortID(f.ID))
		}
		return f, nil
	}
	return found, ErrNothingToAdopt
}

// SweepContainers removes every container of root's gantry that is not one
// of keep (the adopted ones): leftovers of a crash, or of a config that
// changed. It returns their names.
func SweepContainers(ctx context.Context, d *container.Client, root string, keep map[string]bool) ([]string, error) {
	if d == nil {
		return nil, nil
	}
	ours, err := d.Ours(ctx, root)
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, f := range ours {
		if keep[f.ID] {
			continue
		}
		if err := d.Remove(ctx, f.ID); err != nil {
			return gone, err
		}
		gone = append(gone, f.Name)
	}
	return gone, nil
}

// ContainerID is the ID of the engine's container, "" for a native engine
// or none running.
func (p *Process) ContainerID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return ""
	}
	return p.cur.ctr
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return strings.TrimSpace(id)
}

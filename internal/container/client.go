// Package container runs engines as containers through the Docker Engine
// API (the official client, github.com/moby/moby/client): created and
// started detached, labelled as gantry's, published on 127.0.0.1, with
// GPUs as device requests; their output followed into the model's log and
// their exit awaited — no `docker run` child to babysit. DOCKER_HOST is
// honoured.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/status"
)

// Labels gantry puts on its containers: they, not names, say what is
// gantry's and whether a running container is what the config would
// start now.
const (
	LabelModel = "gantry.model" // the model's name
	LabelSpec  = "gantry.spec"  // a hash of the launch
	LabelRoot  = "gantry.root"  // the gantry root it belongs to
)

// Client is a connection to the Docker daemon.
type Client struct {
	c *client.Client

	mu     sync.Mutex
	engine string // the daemon's product, once it has answered /version
}

// New connects to the daemon DOCKER_HOST names (default the local socket).
// Nothing is asked of the daemon yet.
func New() (*Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	return &Client{c: c}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.c.Close() }

// Ping checks that the daemon answers, and says where it is when not.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.c.Ping(ctx, client.PingOptions{}); err != nil {
		return Explain(err)
	}
	return nil
}

// Image is what gantry needs to know of an image.
type Image struct {
	Ref          string   `json:"ref"`
	Present      bool     `json:"present"`
	ID           string   `json:"id,omitempty"`
	Digest       string   `json:"digest,omitempty"`
	Architecture string   `json:"architecture,omitempty"`
	OS           string   `json:"os,omitempty"`
	Size         int64    `json:"size_bytes,omitempty"`
	Entrypoint   []string `json:"entrypoint,omitempty"`
	Cmd          []string `json:"cmd,omitempty"`
}

// InspectImage looks ref up in the daemon; an absent image is Present
// false, not an error.
func (c *Client) InspectImage(ctx context.Context, ref string) (Image, error) {
	res, err := c.c.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return Image{Ref: ref}, nil
		}
		return Image{Ref: ref}, Explain(err)
	}
	im := Image{Ref: ref, Present: true, ID: res.ID, Architecture: res.Architecture, OS: res.Os, Size: res.Size}
	if len(res.RepoDigests) > 0 {
		_, im.Digest, _ = strings.Cut(res.RepoDigests[0], "@")
	}
	if res.Config != nil {
		im.Entrypoint, im.Cmd = res.Config.Entrypoint, res.Config.Cmd
	}
	return im, nil
}

// HostArch is the host's architecture as images name it (amd64, arm64).
func HostArch() string { return runtime.GOARCH }

// Started is a container gantry created and started.
type Started struct {
	ID    string
	Image Image
	// Cmd is what the container runs after the image's entrypoint.
	Cmd []string
}

// Start creates and starts the container of spec, labelled with the model,
// the launch's hash and the root. The image must be present (or is pulled
// first with spec.Pull "missing") and built for this machine's
// architecture. A stale container of the same name that is gantry's is
// removed first.
func (c *Client) Start(ctx context.Context, spec *engine.ContainerSpec, labels map[string]string, progress func(status.PullProgress)) (Started, error) {
	im, err := c.InspectImage(ctx, spec.Image)
	if err != nil {
		return Started{}, err
	}
	if !im.Present {
		if spec.Pull != "missing" {
			return Started{}, &MissingImageError{Image: spec.Image}
		}
		if err := c.Pull(ctx, spec.Image, progress); err != nil {
			return Started{}, err
		}
		if im, err = c.InspectImage(ctx, spec.Image); err != nil {
			return Started{}, err
		}
	}
	if im.Architecture != "" && im.Architecture != HostArch() {
		return Started{}, fmt.Errorf("image %s is built for %s/%s, this machine is %s: pull the %s variant (a DGX Spark is arm64)",
			spec.Image, im.OS, im.Architecture, HostArch(), HostArch())
	}
	if err := c.removeStale(ctx, spec.Name); err != nil {
		return Started{}, err
	}
	cmd := engine.Fit(im.Entrypoint, spec.Argv)
	port := network.MustParsePort(strconv.Itoa(spec.Port) + "/tcp")
	cfg := &container.Config{Image: spec.Image, Cmd: cmd, Env: spec.Env, Labels: labels,
		ExposedPorts: network.PortSet{port: struct{}{}}}
	host := &container.HostConfig{
		PortBindings:  network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(spec.Port)}}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled}, // gantry restarts
	}
	if spec.IPCHost {
		host.IpcMode = "host"
	} else if spec.ShmSize > 0 {
		host.ShmSize = spec.ShmSize
	}
	for _, m := range spec.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	if dr := deviceRequest(spec.GPUs); dr != nil {
		if name := c.engineName(ctx); strings.Contains(name, "Podman") {
			return Started{}, fmt.Errorf("%w (%s)", ErrPodmanGPU, name)
		}
		host.DeviceRequests = []container.DeviceRequest{*dr}
	}
	res, err := c.c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: spec.Name})
	if err != nil {
		return Started{}, Explain(err)
	}
	if _, err := c.c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		c.c.ContainerRemove(context.WithoutCancel(ctx), res.ID, client.ContainerRemoveOptions{Force: true}) //nolint:errcheck // best effort
		return Started{}, Explain(err)
	}
	return Started{ID: res.ID, Image: im, Cmd: cmd}, nil
}

// engineName is the daemon's product and version from /version ("Docker
// Engine 28.2.2", "Podman Engine 4.3.1"); "" when it does not say. It is
// asked once.
func (c *Client) engineName(ctx context.Context) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.engine != "" {
		return c.engine
	}
	v, err := c.c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return ""
	}
	for _, comp := range v.Components {
		if strings.HasSuffix(comp.Name, "Engine") {
			c.engine = comp.Name + " " + comp.Version
			return c.engine
		}
	}
	c.engine = strings.TrimSpace(v.Platform.Name + " " + v.Version)
	return c.engine
}

// deviceRequest is GPUs as the API asks for them: all, a count, or IDs.
func deviceRequest(gpus string) *container.DeviceRequest {
	caps := [][]string{{"gpu"}}
	switch {
	case gpus == "" || gpus == "none":
		return nil
	case gpus == "all":
		return &container.DeviceRequest{Count: -1, Capabilities: caps}
	}
	if n, err := strconv.Atoi(gpus); err == nil {
		return &container.DeviceRequest{Count: n, Capabilities: caps}
	}
	return &container.DeviceRequest{DeviceIDs: strings.Split(gpus, ","), Capabilities: caps}
}

// removeStale removes a container named name if it is gantry's (a
// previous start's, left by a crash); someone else's is an error.
func (c *Client) removeStale(ctx context.Context, name string) error {
	res, err := c.c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return Explain(err)
	}
	if res.Container.Config == nil || res.Container.Config.Labels[LabelModel] == "" {
		return fmt.Errorf("a container named %s exists and is not gantry's: remove or rename it (docker rm -f %s)", name, name)
	}
	_, err = c.c.ContainerRemove(ctx, res.Container.ID, client.ContainerRemoveOptions{Force: true})
	return Explain(err)
}

// Exit is how a container ended.
type Exit struct {
	Code      int
	OOMKilled bool
	Err       error // the daemon could not say (it went away)
}

// String is the exit as a reason.
func (e Exit) String() string {
	switch {
	case e.Err != nil:
		return "the container's end is not known: " + e.Err.Error()
	case e.OOMKilled:
		return fmt.Sprintf("the container was OOM-killed (exit code %d)", e.Code)
	}
	return fmt.Sprintf("container exit code %d", e.Code)
}

// Wait blocks until the container is no longer running, then says how it
// ended.
func (c *Client) Wait(ctx context.Context, id string) Exit {
	w := c.c.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var ex Exit
	select {
	case r := <-w.Result:
		ex.Code = int(r.StatusCode)
	case err := <-w.Error:
		ex.Err = Explain(err)
		return ex
	}
	if res, err := c.c.ContainerInspect(context.WithoutCancel(ctx), id, client.ContainerInspectOptions{}); err == nil && res.Container.State != nil {
		ex.OOMKilled = res.Container.State.OOMKilled
	}
	return ex
}

// Follow copies the container's output (stdout and stderr, from since)
// into w until the container ends or ctx is done.
func (c *Client) Follow(ctx context.Context, id string, since time.Time, w io.Writer) error {
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true}
	if !since.IsZero() {
		opts.Since = strconv.FormatInt(since.Unix(), 10)
	}
	rc, err := c.c.ContainerLogs(ctx, id, opts)
	if err != nil {
		return Explain(err)
	}
	defer rc.Close()
	_, err = stdcopy.StdCopy(w, w, rc)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Stop stops the container (SIGTERM, then SIGKILL after grace) and
// removes it.
func (c *Client) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := max(int(grace.Seconds()), 1)
	_, err := c.c.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		err = Explain(err)
	} else {
		err = nil
	}
	if rerr := c.Remove(context.WithoutCancel(ctx), id); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}

// Found is a container of gantry's.
type Found struct {
	ID, Name, Model, Spec string
	Running               bool
	// Started is when it started (zero when unknown).
	Started time.Time
}

// Ours lists the containers labelled as the gantry of root's, running or
// not.
func (c *Client) Ours(ctx context.Context, root string) ([]Found, error) {
	res, err := c.c.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelRoot+"="+root)})
	if err != nil {
		return nil, Explain(err)
	}
	var out []Found
	for _, s := range res.Items {
		f := Found{ID: s.ID, Model: s.Labels[LabelModel], Spec: s.Labels[LabelSpec], Running: s.State == container.StateRunning,
			Started: time.Unix(s.Created, 0)}
		if len(s.Names) > 0 {
			f.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		out = append(out, f)
	}
	return out, nil
}

// removalWait bounds the wait for a removal someone else began.
const removalWait = 30 * time.Second

// Remove removes a container, running or not, and returns once it is
// gone (or the removal failed). A removal already under way is waited
// for, not reported: the exit watcher removes a container that ended
// while a stop removes the same one, and moby answers the second with 409
// "removal of container … is already in progress" (daemon/delete.go,
// errdefs.Conflict) before the first is done — a stop that returned then
// left the container behind for a moment after gantry exited.
func (c *Client) Remove(ctx context.Context, id string) error {
	_, err := c.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	switch {
	case err == nil || cerrdefs.IsNotFound(err):
		return nil
	case !cerrdefs.IsConflict(err) || !strings.Contains(err.Error(), "already in progress"):
		return Explain(err)
	}
	ctx, cancel := context.WithTimeout(ctx, removalWait)
	defer cancel()
	w := c.c.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
	select {
	case <-w.Result:
		return nil
	case werr := <-w.Error:
		if cerrdefs.IsNotFound(werr) {
			return nil // gone before the wait began
		}
		return fmt.Errorf("container %s: its removal, already under way, did not finish: %w", id[:min(len(id), 12)], Explain(werr))
	}
}

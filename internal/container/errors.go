package container

import (
	"errors"
	"fmt"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// ErrNoGPURuntime is a daemon that cannot give a container a GPU.
var ErrNoGPURuntime = errors.New(`docker cannot give the container a GPU: install the NVIDIA Container Toolkit and run "nvidia-ctk runtime configure --runtime=docker", then restart dockerd (or set gpus: none for a CPU engine)`)

// ErrPodmanGPU is a GPU container asked of Podman: its Docker-compatible
// API takes Docker's GPU requests (HostConfig.DeviceRequests) and drops
// them — checked against Podman 4.3: the container runs, with no GPU — and
// its CDI devices are not reachable through that API.
var ErrPodmanGPU = errors.New("the container runtime is Podman, whose Docker-compatible API drops GPU requests: the engine would run without a GPU. Run gantry against Docker with the NVIDIA Container Toolkit (DOCKER_HOST), or set gpus: none for an engine that runs on the CPU")

// ErrDaemon is a Docker daemon that does not answer.
var ErrDaemon = errors.New("the Docker daemon does not answer")

// MissingImageError is a start whose image is not present.
type MissingImageError struct{ Image string }

func (e *MissingImageError) Error() string {
	return fmt.Sprintf("image %s is not present: run gantry pull (or set pull: missing to pull it at a start)", e.Image)
}

// Explain turns the daemon's errors into what a user acts on: no GPU
// runtime (dockerd answers `could not select device driver "" with
// capabilities: [[gpu]]`), a daemon that is down or unreachable (naming
// DOCKER_HOST), a Podman socket. Other errors pass unchanged.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "could not select device driver") && strings.Contains(msg, "gpu"):
		return fmt.Errorf("%w (%s)", ErrNoGPURuntime, msg)
	case client.IsErrConnectionFailed(err) || strings.Contains(msg, "Cannot connect to the Docker daemon") ||
		strings.Contains(msg, "connect: no such file or directory") || strings.Contains(msg, "connect: connection refused"):
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = "unix:///var/run/docker.sock"
		}
		return fmt.Errorf("%w at %s (start it: systemctl start docker; or set DOCKER_HOST): %v", ErrDaemon, host, err)
	case cerrdefs.IsNotFound(err) && strings.Contains(msg, "No such image"):
		return err
	}
	return err
}

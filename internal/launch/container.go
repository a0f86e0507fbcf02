package launch

import (
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
)

// containerLaunch is a docker-runtime engine's launch: the container by
// the descriptor's contract with its images — the model's files at
// /model read-only, the engine's cache or store folder, the port published
// on 127.0.0.1 only (the gateway is the one door in) — and the equivalent
// `docker run` as the argv.
func containerLaunch(d *engine.Descriptor, m *config.Model, h Host, r engine.Resources) (engine.Launch, error) {
	c := d.Container
	em := model(m, h, r)
	em.Host, em.Program, em.Store = "0.0.0.0", c.Program, c.Store
	var mounts []string
	// A snapshot of the Hugging Face cache mounts its repository's folder
	// (its files link into blobs/) and is found below it.
	host, rel := h.Config.ModelMount(m)
	switch c.Mount {
	case engine.MountFolder:
		mounts, em.Path = append(mounts, host+":/model:ro"), path.Join("/model", filepath.ToSlash(rel))
	case engine.MountFileFolder:
		if rel == "" {
			host, rel = filepath.Dir(host), filepath.Base(host)
		}
		mounts, em.Path = append(mounts, host+":/model:ro"), path.Join("/model", filepath.ToSlash(rel))
	}
	if c.Cache != "" {
		mounts = append(mounts, h.Config.CacheDir(m.Engine)+":"+c.Cache)
	}
	if c.Store != "" {
		mounts = append(mounts, StoreDir(h.Config, m.Engine)+":"+c.Store)
	}
	cmd, err := d.Command(em)
	if err != nil {
		return engine.Launch{}, err
	}
	env := cmd.Env
	if c.PlanEnv {
		env = append(env, plannedEnv(m, r)...)
	}
	l := dockerRun(m, mounts, env, cmd.Argv)
	l.Container.EntrypointArgs = c.Program == "" && d.Program != ""
	if d.Shared != "" {
		// One container serves every model of the engine.
		name := engine.ContainerName(d.Name)
		l.Argv[slices.Index(l.Argv, l.DockerName)], l.DockerName = name, name
	}
	return l, nil
}

// dockerRun is the container of the in-container command inner, and the
// equivalent `docker run`.
func dockerRun(m *config.Model, mounts []string, env []string, inner []string) engine.Launch {
	name := engine.ContainerName(m.Name)
	port := strconv.Itoa(m.Port)
	argv := []string{"docker", "run", "--rm", "--name", name}
	if m.GPUs != "none" && m.GPUs != "" {
		argv = append(argv, "--gpus", m.GPUs)
	}
	argv = append(argv, "--ipc=host", "--shm-size", "16g",
		"-p", "127.0.0.1:"+port+":"+port)
	for _, v := range mounts {
		argv = append(argv, "-v", v)
	}
	for _, k := range sortedEnvKeys(m.Env) {
		argv = append(argv, "-e", k) // value comes from the docker client's env, never argv
	}
	for _, e := range env {
		argv = append(argv, "-e", e)
	}
	argv = append(argv, m.Image)
	argv = append(argv, inner...)
	spec := &engine.ContainerSpec{Name: name, Image: m.Image, Argv: inner, Port: m.Port, GPUs: m.GPUs,
		ShmSize: 16 << 30, IPCHost: true, Pull: m.Pull, StopTimeout: m.StopTimeout.D()}
	for _, k := range sortedEnvKeys(m.Env) {
		spec.Env = append(spec.Env, k+"="+m.Env[k])
	}
	spec.Env = append(spec.Env, env...)
	for _, v := range mounts {
		src, rest, _ := strings.Cut(v, ":")
		target, mode, _ := strings.Cut(rest, ":")
		spec.Mounts = append(spec.Mounts, engine.Mount{Source: src, Target: target, ReadOnly: mode == "ro"})
	}
	return engine.Launch{
		Argv:       argv,
		DockerName: name,
		Container:  spec,
	}
}

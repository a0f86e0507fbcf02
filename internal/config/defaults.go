package config

import (
	"strings"

	"github.com/gantryhq/gantry/internal/engine"
)

// applyDefaults fills in what the file leaves unset. A value the file sets
// is kept even when it is zero: idle_timeout: 0 (never idle out),
// stop_timeout: 0 (no grace: SIGKILL), queue_limit: 0 (nobody waits),
// health_interval: 0 (no checks), min_residency: 0s are choices, not
// gaps (Validate refuses the zeros that mean nothing).
func (c *Config) applyDefaults() {
	c.topDefaults()
	c.defaultsDefaults()
	c.slotDefaults()
	if c.Models == nil {
		c.Models = map[string]*Model{}
	}
	c.engineDefaults()
	for name, m := range c.Models {
		if m == nil {
			m = &Model{}
			c.Models[name] = m
		}
		c.modelDefaults(name, m)
	}
	c.assignPorts()
}

// unset reports whether the file leaves a key unset (or sets it wrong).
func (c *Config) unset(path ...string) bool { return !c.has(path...) || c.bad[strings.Join(path, ".")] }

// topDefaults fills the top-level keys: listen, root, peers, keys,
// port_range, memory, the body limits, activity.
func (c *Config) topDefaults() {
	unset := c.unset
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	c.Root = ExpandHome(c.Root)
	c.applyPeerDefaults()
	c.applyKeyDefaults()
	if c.PortRange.First == 0 {
		c.PortRange = PortRange{30100, 30999}
	}
	if c.Memory.Total == 0 && unset("memory", "total") {
		c.Memory.Total = SizeAuto
	}
	if c.Memory.Reserve == 0 && unset("memory", "reserve") {
		c.Memory.Reserve = 8 << 30
	}
}

// defaultsDefaults fills defaults:, from which each model takes what it
// leaves unset.
func (c *Config) defaultsDefaults() {
	unset := c.unset
	d := &c.Defaults
	if unset("defaults", "idle_timeout") {
		d.IdleTimeout = Duration(15 * 60e9)
	}
	if unset("defaults", "start_timeout") {
		d.StartTimeout = Duration(15 * 60e9)
	}
	if unset("defaults", "stop_timeout") {
		d.StopTimeout = Duration(30e9)
	}
	if unset("defaults", "queue_limit") {
		d.QueueLimit = 256
	}
	if unset("defaults", "health_interval") {
		d.HealthInterval = Duration(10e9)
	}
	if unset("defaults", "health_failures") {
		d.HealthFailures = 3
	}
	if d.AbandonedLoads == "" {
		d.AbandonedLoads = "continue"
	}
	if unset("max_body") {
		c.MaxBody = 32 << 20
	}
	if unset("max_body_total") {
		c.MaxBodyTotal = 256 << 20
	}
	if c.Memory.Unified == "" {
		c.Memory.Unified = "auto"
	}
	if unset("memory", "watchdog") {
		c.Memory.Watchdog = 4 << 30
	}
	if unset("activity", "keep_days") {
		c.Activity.KeepDays = 30
	}
	if unset("activity", "keep_rows") {
		c.Activity.KeepRows = 1000000
	}
}

// slotDefaults fills each slot's switch settings.
func (c *Config) slotDefaults() {
	unset := c.unset
	for name, sl := range c.Slots {
		if sl == nil {
			continue
		}
		if unset("slots", name, "min_residency") {
			sl.MinResidency = Duration(30e9)
		}
		if sl.DuringSwitch == "" {
			sl.DuringSwitch = "wait"
		}
		if sl.RestoreDefault == nil {
			t := true
			sl.RestoreDefault = &t
		}
	}
}

// engineDefaults fills engines: with each engine's descriptor's port and
// image.
func (c *Config) engineDefaults() {
	if c.Engines == nil {
		c.Engines = map[string]*EngineSettings{}
	}
	for _, d := range engine.All() {
		es := c.Engines[d.Name]
		if es == nil {
			es = &EngineSettings{}
			c.Engines[d.Name] = es
		}
		if es.Port == 0 {
			es.Port = d.Port
		}
		if es.Image == "" {
			es.Image = d.Container.Image
		}
	}
}

// modelDefaults fills one model: its mode, runtime, image and container
// settings from its engine, what defaults: gives, health: for engine
// command.
func (c *Config) modelDefaults(name string, m *Model) {
	d := &c.Defaults
	m.Name = name
	own := func(key string) bool { return !c.unset("models", name, key) }
	if m.Mode == "" {
		m.Mode = ModeOnDemand
	}
	if m.Runtime == "" {
		m.Runtime = DefaultRuntime(m.Engine)
	}
	if m.Image == "" && m.Runtime == RuntimeDocker {
		if es := c.Engines[m.Engine]; es != nil {
			m.Image = es.Image
		}
	}
	if m.Runtime == RuntimeDocker {
		if m.GPUs == "" {
			m.GPUs = "all"
		}
		if m.Pull == "" {
			if es := c.Engines[m.Engine]; es != nil && es.Pull != "" {
				m.Pull = es.Pull
			} else {
				m.Pull = "never"
			}
		}
	}
	if !own("idle_timeout") {
		m.IdleTimeout = d.IdleTimeout
	}
	if !own("start_timeout") {
		m.StartTimeout = d.StartTimeout
	}
	if !own("stop_timeout") {
		m.StopTimeout = d.StopTimeout
	}
	if !own("queue_limit") {
		m.QueueLimit = d.QueueLimit
	}
	if !own("health_interval") {
		m.HealthInterval = d.HealthInterval
	}
	if !own("health_failures") {
		m.HealthFailures = d.HealthFailures
	}
	if m.AbandonedLoads == "" {
		m.AbandonedLoads = d.AbandonedLoads
	}
	if d, _ := engine.Lookup(m.Engine); d != nil && d.TakesCommand && m.Health == "" {
		m.Health = "/health"
	}
}

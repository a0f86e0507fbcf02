// Package systemd writes systemd unit files: one for gantry itself
// (Type=notify, reload on SIGHUP), and, for people who want systemd rather
// than gantry to supervise an engine, one per model in the seed's style
// (docker run with a pinned image, or the native command).
package systemd

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/config"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/lazyre"
)

// Gantry is gantry.service for the binary at bin and the config at cfg,
// run as user (User=) unless user is "" (root).
func Gantry(bin, cfg, user string) string {
	return fmt.Sprintf(`[Unit]
Description=gantry: the LLM serving control plane
Documentation=https://github.com/gantryhq/gantry
After=network-online.target docker.service
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
%sEnvironment=GANTRY_CONFIG=%s
ExecStart=%s serve --config %s
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=5
# gantry stops every engine it started (SIGTERM, stop_timeout, SIGKILL of
# the group) before it exits; give it the time. KillMode=process: if gantry
# crashes, its engines keep running and the restarted gantry adopts them
# instead of loading them again.
KillMode=process
TimeoutStopSec=120
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`, userLine(user), Quote(cfg), Quote(bin), Quote(cfg))
}

// userLine is User=NAME and a newline, "" for no user.
func userLine(user string) string {
	if user == "" {
		return ""
	}
	return "User=" + user + "\n"
}

// ValidUser reports whether name can be written as User=: a user name as
// systemd takes it (letters, digits, _ and -, not starting with a digit
// or -; at most 32 bytes), or a numeric UID.
func ValidUser(name string) bool {
	return userRE.MatchString(name) && len(name) <= 32
}

var userRE = lazyre.New(`^(?:[A-Za-z_][A-Za-z0-9_-]*|[0-9]+)$`)

// Model is gantry-<model>.service: the engine under systemd's supervision,
// as the seed's sglang.service and vllm.service were, run as user unless
// user is "". Secret env values (KEY, TOKEN, SECRET, PASSWORD) are not
// written: they come from /etc/gantry/<model>.env.
func Model(m *config.Model, l engine.Launch, user string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Unit]\nDescription=gantry engine %s (%s, %s)\n", m.Name, m.Engine, m.Runtime)
	if l.DockerName != "" {
		b.WriteString("After=network-online.target docker.service\nRequires=docker.service\n")
	} else {
		b.WriteString("After=network-online.target\n")
	}
	b.WriteString("\n[Service]\n" + userLine(user) + "Restart=always\nRestartSec=5\n")
	fmt.Fprintf(&b, "EnvironmentFile=-/etc/gantry/%s.env\n", m.Name)
	var keys []string
	for k := range m.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if config.SecretName(k) {
			fmt.Fprintf(&b, "# %s: set it in /etc/gantry/%s.env\n", k, m.Name)
			continue
		}
		fmt.Fprintf(&b, "Environment=%s\n", Quote([]string{k + "=" + m.Env[k]}[0]))
	}
	for _, kv := range l.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := m.Env[k]; ok {
			continue // the model's own env, above
		}
		fmt.Fprintf(&b, "Environment=%s\n", Quote(kv))
	}
	argv := append([]string{}, l.Argv...)
	if pre := PreStart(l); pre != nil {
		argv[0] = "/usr/bin/docker"
		fmt.Fprintf(&b, "ExecStartPre=-/usr/bin/docker %s\n", QuoteArgs(pre[1:]))
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", QuoteArgs(argv))
	if stop := Stop(l); stop != nil {
		fmt.Fprintf(&b, "ExecStop=/usr/bin/docker %s\n", QuoteArgs(stop[1:]))
	} else {
		fmt.Fprintf(&b, "KillMode=control-group\nTimeoutStopSec=%d\n", int(m.StopTimeout.D().Seconds())+5)
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

// PreStart is what a unit runs before a docker-runtime engine's `docker
// run` (ExecStartPre): remove a stale container of the same name, so that
// "name already in use" cannot happen; nil for a native engine.
func PreStart(l engine.Launch) []string {
	if l.DockerName == "" {
		return nil
	}
	return []string{"docker", "rm", "-f", l.DockerName}
}

// Stop is how a unit stops a docker-runtime engine gracefully (ExecStop:
// docker stop with the model's stop_timeout, at least a second); nil for a
// native engine, which systemd stops with SIGTERM to its control group.
func Stop(l engine.Launch) []string {
	if l.DockerName == "" || l.Container == nil {
		return nil
	}
	return []string{"docker", "stop", "-t", strconv.Itoa(max(int(l.Container.StopTimeout.Seconds()), 1)), l.DockerName}
}

// QuoteArgs joins argv for an Exec= line.
func QuoteArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// Quote quotes one word for systemd: specifiers (%) and variables ($) are
// escaped, and words with blanks, quotes, backslashes or ; are put in
// double quotes.
func Quote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	s = strings.ReplaceAll(s, "$", "$$")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

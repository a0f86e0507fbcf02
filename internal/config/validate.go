package config

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry/internal/engine"
	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong (or, with Warning, doubtful) in a config.
type Problem struct {
	File    string
	Line    int    // 0 when unknown
	Path    string // key path, e.g. models.scout.port
	Msg     string
	Warning bool
}

// String formats the problem as "file:line: path: message".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is a list of problems; as an error it is the errors among them,
// one per line.
type Problems []Problem

// Error implements error.
func (ps Problems) Error() string {
	lines := make([]string, 0, len(ps))
	for _, p := range ps {
		if !p.Warning {
			lines = append(lines, p.String())
		}
	}
	return strings.Join(lines, "\n")
}

// Errors counts the problems that are not warnings.
func (ps Problems) Errors() int {
	n := 0
	for _, p := range ps {
		if !p.Warning {
			n++
		}
	}
	return n
}

var typeOfConfig = reflect.TypeOf(Config{})

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// checkKeys walks the YAML tree beside the Go type and reports every key the
// type does not have, with its path and line. yaml's own KnownFields stops
// at the first and does not say where in the tree the key was.
func checkKeys(n *yaml.Node, t reflect.Type, path []string, file string, probs *Problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	at := func() string { return strings.Join(path, ".") }
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// Parse the value here too, so a bad size or duration is reported
		// with its key path, and every one of them, not just the first.
		v := reflect.New(t).Interface().(yaml.Unmarshaler)
		if err := v.UnmarshalYAML(n); err != nil {
			*probs = append(*probs, Problem{File: file, Line: n.Line, Path: at(), Msg: cleanYAMLErr(err)})
		}
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil {
			*probs = append(*probs, Problem{File: file, Line: n.Line, Path: at(), Msg: fmt.Sprintf("%q is not a whole number", n.Value)})
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			*probs = append(*probs, Problem{File: file, Line: n.Line, Path: at(), Msg: "expected a single value, not a list or map"})
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type error
		}
		fields := map[string]reflect.Type{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
			known = append(known, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			p := append(append([]string(nil), path...), k.Value)
			if !ok {
				sort.Strings(known)
				msg := fmt.Sprintf("unknown key (known here: %s)", strings.Join(known, ", "))
				if c := closest(k.Value, known); c != "" {
					msg = fmt.Sprintf("unknown key; did you mean %s? (known here: %s)", c, strings.Join(known, ", "))
				}
				*probs = append(*probs, Problem{File: file, Line: k.Line, Path: strings.Join(p, "."), Msg: msg})
				continue
			}
			checkKeys(n.Content[i+1], ft, p, file, probs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), append(append([]string(nil), path...), n.Content[i].Value), file, probs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), append(append([]string(nil), path...), strconv.Itoa(i)), file, probs)
		}
	}
}

// Line returns the line of the key at path in the config file, 0 when the
// file does not set it.
func (c *Config) Line(path ...string) int { return c.line(path...) }

// line returns the line of the key at path (or of its value, for sequence
// items), or 0 when the config has no such key (a default, say).
func (c *Config) line(path ...string) int {
	l, _ := c.lookup(path...)
	return l
}

// has reports whether the config file itself sets the key at path.
func (c *Config) has(path ...string) bool {
	_, ok := c.lookup(path...)
	return ok
}

func (c *Config) lookup(path ...string) (int, bool) {
	if c.doc == nil || len(c.doc.Content) == 0 {
		return 0, false
	}
	n := c.doc.Content[0]
	line := 0
	for _, k := range path {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line, false
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(n.Content) {
				return line, false
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line, false
		}
	}
	return line, true
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return h, n, nil
}

// IsLoopback reports whether the host of a listen address only accepts
// connections from this machine.
func IsLoopback(listen string) bool {
	h, _, err := splitHostPort(listen)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Validate checks the config as a whole and returns every problem found, in
// file order. Errors make the config unusable; warnings do not.
func (c *Config) Validate() Problems {
	v := validator{c: c}
	v.run()
	sort.SliceStable(v.probs, func(i, j int) bool { return v.probs[i].Line < v.probs[j].Line })
	return v.probs
}

type validator struct {
	c     *Config
	probs Problems
}

func (v *validator) add(path []string, format string, args ...any) {
	v.probs = append(v.probs, Problem{File: v.c.File, Line: v.c.line(path...), Path: strings.Join(path, "."), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warn(path []string, format string, args ...any) {
	v.add(path, format, args...)
	v.probs[len(v.probs)-1].Warning = true
}

// run checks the whole config, section by section; the order of the
// sections is the order of the problems.
func (v *validator) run() {
	lport := v.general()
	users := v.doorPorts(lport)
	v.peers()
	v.kubernetes()
	v.hub()
	v.keys()
	v.models(users)
	users.conflicts(v)
	v.aliases()
	v.fallbacks()
	v.slots()
	v.profiles()
	v.presets()
	v.services()
	v.engines()
}

// general checks the top-level keys — listen, auth keys, memory, root,
// the body limits, allowed_hosts, cors, activity, defaults — and returns
// the gateway's port (0 when listen is wrong).
func (v *validator) general() (lport int) {
	c := v.c
	_, lport, err := splitHostPort(c.Listen)
	if err != nil {
		v.add([]string{"listen"}, "%q is not host:port (%v)", c.Listen, err)
	} else if c.Auth.GatewayOpen() && !IsLoopback(c.Listen) {
		v.add([]string{"listen"}, "%s accepts connections from other machines but auth.api_keys is empty: add a key, or listen on 127.0.0.1", c.Listen)
	}
	for i, k := range c.Auth.APIKeys {
		if strings.TrimSpace(k) == "" {
			v.add([]string{"auth", "api_keys", strconv.Itoa(i)}, "empty key")
		}
	}
	for i, k := range c.Auth.AdminKeys {
		if strings.TrimSpace(k) == "" {
			v.add([]string{"auth", "admin_keys", strconv.Itoa(i)}, "empty key")
		}
	}
	if c.Memory.Total != SizeAuto && c.Memory.Total <= c.Memory.Reserve {
		// also an explicit total of 0
		v.add([]string{"memory", "total"}, "%s leaves nothing after memory.reserve %s", c.Memory.Total, c.Memory.Reserve)
	}
	if u := c.Memory.Unified; u != "auto" && u != "true" && u != "false" {
		v.add([]string{"memory", "unified"}, "%q: want auto, true or false", u)
	}
	if c.Memory.Watchdog < 0 || c.Memory.Watchdog == SizeAuto {
		v.add([]string{"memory", "watchdog"}, "want a size such as 4GiB (0 turns the watchdog off)")
	}
	if c.Memory.Reserve == SizeAuto {
		v.add([]string{"memory", "reserve"}, "auto is only allowed for memory.total")
	}
	if c.Root == "" {
		v.add([]string{"root"}, "empty")
	}
	if c.MaxBody < 1024 {
		v.add([]string{"max_body"}, "%s is too small for any request; the default is 32MiB", c.MaxBody)
	}
	if c.MaxBodyTotal < c.MaxBody {
		v.add([]string{"max_body_total"}, "%s is less than max_body %s: one request could never be read", c.MaxBodyTotal, c.MaxBody)
	}
	for i, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/:@ *") {
			v.add([]string{"allowed_hosts", strconv.Itoa(i)}, "%q: write a host name or IP address alone, without scheme, port or wildcard", h)
		}
	}
	for i, o := range c.CORS.AllowedOrigins {
		if o == "*" {
			v.anyOrigin([]string{"cors", "allowed_origins", strconv.Itoa(i)})
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			v.add([]string{"cors", "allowed_origins", strconv.Itoa(i)}, "%q is not an origin: write scheme://host[:port], e.g. http://localhost:8080", o)
		}
	}
	if c.Activity.KeepDays < 0 || c.Activity.KeepRows < 0 {
		v.add([]string{"activity"}, "keep_days and keep_rows must not be negative (0 turns the log off)")
	}
	if c.Defaults.QueueLimit < 0 {
		v.add([]string{"defaults", "queue_limit"}, "must not be negative")
	}
	v.timings([]string{"defaults"}, c.Defaults.StartTimeout, c.Defaults.StopTimeout, c.Defaults.IdleTimeout,
		c.Defaults.HealthInterval, c.Defaults.HealthFailures)
	if len(c.Models) == 0 {
		v.warn([]string{"models"}, "no models configured: the gateway will have nothing to serve")
	}
	return lport
}

// portUser is a key that takes a port: who, for messages, and its path.
type portUser struct {
	who  string
	path []string
}

// portUsers are the keys that take each port.
type portUsers map[int][]portUser

// doorPorts checks gantry's own listeners (listen, the doors, the slots'
// ports) and returns who takes which port so far.
func (v *validator) doorPorts(lport int) portUsers {
	c := v.c
	users := portUsers{}
	if lport > 0 {
		users[lport] = append(users[lport], portUser{"listen (the gateway)", []string{"listen"}})
	}
	lkey := map[string]string{c.Listen: "listen"}
	for _, d := range c.Doors() {
		p := strings.Split(d.Key, ".")
		if d.Model != "" || d.Slot != "" {
			p = []string{p[0], strings.TrimSuffix(strings.TrimPrefix(d.Key, p[0]+"."), ".listen"), "listen"}
		}
		if _, port, err := splitHostPort(d.Addr); err != nil || port == 0 {
			v.add(p, "%q is not host:port (e.g. 0.0.0.0:30000)", d.Addr)
			continue
		} else {
			users[port] = append(users[port], portUser{d.Key, p})
		}
		if c.Auth.GatewayOpen() && !IsLoopback(d.Addr) {
			v.add(p, "%s accepts connections from other machines but auth.api_keys is empty: add a key, or listen on 127.0.0.1", d.Addr)
		}
		if o, ok := lkey[d.Addr]; ok {
			v.add(p, "%s is also %s: each listener needs its own address", d.Addr, o)
		}
		lkey[d.Addr] = d.Key
	}
	for _, name := range sortedKeys(c.Slots) {
		s := c.Slots[name]
		p := []string{"slots", name}
		if s == nil || s.Port <= 0 || s.Port > 65535 {
			v.add(append(p, "port"), "a slot needs a port from 1 to 65535 (or a listen, and gantry picks the engines' port)")
			continue
		}
		users[s.Port] = append(users[s.Port], portUser{"slots." + name, append(p, "port")})
	}
	return users
}

// models checks each model (v.model, v.nodes) and adds the ports the
// models' engines take — one per engine for a shared server.
func (v *validator) models(users portUsers) {
	c := v.c
	sharedUsers := map[string]int{} // models on an engine's shared server, by engine
	for _, name := range c.ModelNames() {
		m := c.Models[name]
		p := []string{"models", name}
		v.model(name, m, p)
		v.nodes(name, m, p)
		if m.Slot != "" || m.Port <= 0 {
			continue
		}
		if d, _ := engine.Lookup(m.Engine); d != nil && d.Shared != "" {
			sharedUsers[m.Engine]++
			continue
		}
		users[m.Port] = append(users[m.Port], portUser{"models." + name, append(p, "port")})
	}
	for _, d := range engine.All() {
		if sharedUsers[d.Name] > 0 {
			op := c.Engines[d.Name].Port
			users[op] = append(users[op], portUser{"engines." + d.Name + " (" + d.Shared + ")", []string{"engines", d.Name, "port"}})
		}
	}
}

// conflicts reports every port that two keys take, on each of them.
func (users portUsers) conflicts(v *validator) {
	for port, us := range users {
		if len(us) < 2 {
			continue
		}
		for i, u := range us {
			var others []string
			for j, o := range us {
				if j != i {
					others = append(others, o.who)
				}
			}
			v.add(u.path, "%d is also used by %s", port, strings.Join(others, ", "))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Closest is the name a user most likely meant by s: the candidate within
// edit distance 2 of it (and less than half of s: "r1" is not a typo of
// "q3"), else the only one that begins with s or that s begins with; ""
// when none is that close.
func Closest(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" && 2*editDistance(s, c) < len(s) {
		return c
	}
	var found []string
	for _, c := range candidates {
		if len(s) >= 3 && (strings.HasPrefix(c, s) || strings.HasPrefix(s, c)) {
			found = append(found, c)
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
}

// closest returns the candidate within edit distance 2 of s, if any: the
// key the user most likely meant.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

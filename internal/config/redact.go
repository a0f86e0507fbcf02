package config

import (
	"net/url"
	"strings"
)

// RedactURL is raw without its userinfo (user:password@), for every
// message, status and page that shows a URL. A string that does not parse
// as a URL loses whatever stands where userinfo would.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		if u.User == nil {
			return raw
		}
		u.User = nil
		return u.String()
	}
	prefix, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	host, tail := rest, ""
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		host, tail = rest[:j], rest[j:]
	}
	if k := strings.LastIndexByte(host, '@'); k >= 0 {
		host = host[k+1:]
	}
	return prefix + host + tail
}

// RedactArgv hides the values of flags that look like secrets (their
// names say KEY, TOKEN, SECRET or PASSWORD: --api-key K, --hf-token=T) in
// a command line gantry shows: logs, the engines' registry, ps and
// config validate --json.
func RedactArgv(argv []string) []string {
	if argv == nil {
		return nil
	}
	out := make([]string, len(argv))
	hide := false
	for i, a := range argv {
		switch {
		case hide:
			out[i] = "***"
			hide = false
		case SecretName(a) && strings.HasPrefix(a, "-"):
			if k, _, ok := strings.Cut(a, "="); ok {
				out[i] = k + "=***"
			} else {
				out[i] = a
				hide = true
			}
		default:
			out[i] = a
		}
	}
	return out
}

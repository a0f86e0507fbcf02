package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes. In YAML it is written as an integer or with a
// unit: 512MiB, 64GiB, 1.5TB. Binary (KiB, MiB, GiB, TiB) and decimal (KB,
// MB, GB, TB) units are both accepted; a bare number is bytes.
type Size int64

// SizeAuto is the value of a Size written as "auto": the program decides.
// Only memory.total accepts it.
const SizeAuto Size = -1

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseSize parses a size such as "64GiB", "500MB", "1024" or "auto".
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	if s == "auto" {
		return SizeAuto, nil
	}
	mult := 1.0
	num := s
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			mult = u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || num == "" {
		return 0, fmt.Errorf("%q is not a size (write it like 64GiB, 512MiB or 1024)", s)
	}
	v := f * mult
	if v > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(v), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeErr(n, "expected a size like 64GiB")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return typeErr(n, err.Error())
	}
	*s = v
	return nil
}

// String formats the size with a binary unit, e.g. "64GiB" or "1.5GiB".
func (s Size) String() string {
	if s == SizeAuto {
		return "auto"
	}
	return FormatBytes(int64(s))
}

// FormatBytes formats n bytes with the largest binary unit that keeps the
// number at or above 1, with at most one decimal.
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + units[i]
}

// Duration is a time.Duration written in YAML as "15m", "30s" or "1h30m".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeErr(n, "expected a duration like 30s or 15m")
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return typeErr(n, fmt.Sprintf("%q is not a duration (write it like 30s, 15m or 1h)", n.Value))
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// PortRange is an inclusive range of TCP ports, written "30100-30999".
type PortRange struct {
	First, Last int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *PortRange) UnmarshalYAML(n *yaml.Node) error {
	a, b, ok := strings.Cut(n.Value, "-")
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if n.Kind != yaml.ScalarNode || !ok || err1 != nil || err2 != nil || first < 1 || last > 65535 || first > last {
		return typeErr(n, fmt.Sprintf("%q is not a port range (write it like 30100-30999)", n.Value))
	}
	r.First, r.Last = first, last
	return nil
}

// String formats the range as "first-last".
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// typeErr is a decoding error yaml collects rather than stopping at, so
// that one bad value does not hide the others.
func typeErr(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}

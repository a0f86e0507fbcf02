package metrics

import (
	"cmp"
	"compress/gzip"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// gantry writes Prometheus's text exposition format (version 0.0.4:
// prometheus/docs, content/docs/instrumenting/exposition_formats.md) itself,
// as client_golang v1.25 wrote it before: families sorted by name, each
// with its HELP and TYPE, a series' labels sorted by name, series sorted by
// their labels, values as strconv's shortest 'g' form. client_golang came
// with protobuf's runtime (its client_model types): 3.4 MB of the binary and
// 2.3 MB of an idle gantry's RSS, for a dozen counters and histograms.

// desc is a family's name, help, type and label names.
type desc struct {
	name, help, typ string
	labels          []string
}

// labelKey is a series' label values, in the order of its family's label
// names (no family here has more than three): a map key that costs no
// allocation to build.
type labelKey [3]string

func keyOf(values []string) labelKey {
	var k labelKey
	copy(k[:], values)
	return k
}

// counterVec is a counter family with labels.
type counterVec struct {
	desc
	mu   sync.Mutex
	vals map[labelKey]float64
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{desc: desc{name, help, "counter", labels}, vals: map[labelKey]float64{}}
}

// add adds v to the series of the label values lv (one per label name).
func (c *counterVec) add(v float64, lv ...string) {
	k := keyOf(lv)
	c.mu.Lock()
	c.vals[k] += v
	c.mu.Unlock()
}

// write appends the family, each series at its value.
func (c *counterVec) write(w *expo) {
	c.mu.Lock()
	ss := make([]series, 0, len(c.vals))
	for k, v := range c.vals {
		ss = append(ss, series{k, v})
	}
	c.mu.Unlock()
	w.family(c.desc, ss)
}

// histogramVec is a histogram family with labels.
type histogramVec struct {
	desc
	buckets []float64 // upper bounds, ascending; +Inf is implied
	mu      sync.Mutex
	vals    map[labelKey]*histogram
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf's
	sum    float64
}

func newHistogramVec(name, help string, buckets []float64, labels ...string) *histogramVec {
	return &histogramVec{desc: desc{name, help, "histogram", labels}, buckets: buckets, vals: map[labelKey]*histogram{}}
}

// observe counts v in the series of the label values lv.
func (h *histogramVec) observe(v float64, lv ...string) {
	k := keyOf(lv)
	i, _ := slices.BinarySearch(h.buckets, v) // the first bound ≥ v: v ≤ le
	h.mu.Lock()
	s := h.vals[k]
	if s == nil {
		s = &histogram{counts: make([]uint64, len(h.buckets)+1)}
		h.vals[k] = s
	}
	s.counts[i]++
	s.sum += v
	h.mu.Unlock()
}

// write appends the family: each series' cumulative buckets, sum and count.
func (h *histogramVec) write(w *expo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.vals) == 0 {
		return
	}
	keys := make([]labelKey, 0, len(h.vals))
	for k := range h.vals {
		keys = append(keys, k)
	}
	w.head(h.desc)
	for _, k := range w.sorted(h.desc, keys) {
		s := h.vals[k]
		var n uint64
		for i, c := range s.counts {
			n += c
			le := math.Inf(1)
			if i < len(h.buckets) {
				le = h.buckets[i]
			}
			w.sample(h.name+"_bucket", h.labels, k, "le", le, float64(n))
		}
		w.sample(h.name+"_sum", h.labels, k, "", 0, s.sum)
		w.sample(h.name+"_count", h.labels, k, "", 0, float64(n))
	}
}

// series is one series of a family: its label values and value.
type series struct {
	k labelKey
	v float64
}

// expo is an exposition being written: each family's text, put in order
// of name by bytes.
type expo struct {
	fams []famText
}

type famText struct {
	name string
	text []byte
}

// family appends a family of plain samples (a counter's or a gauge's);
// one without series is left out.
func (w *expo) family(d desc, ss []series) {
	if len(ss) == 0 {
		return
	}
	keys := make([]labelKey, len(ss))
	vals := make(map[labelKey]float64, len(ss))
	for i, s := range ss {
		keys[i], vals[s.k] = s.k, s.v
	}
	w.head(d)
	for _, k := range w.sorted(d, keys) {
		w.sample(d.name, d.labels, k, "", 0, vals[k])
	}
}

// gauge appends a family of one series without labels.
func (w *expo) gauge(name, help string, v float64) {
	w.family(desc{name, help, "gauge", nil}, []series{{v: v}})
}

// head starts a family: its HELP and TYPE lines.
func (w *expo) head(d desc) {
	w.fams = append(w.fams, famText{name: d.name})
	b := w.fams[len(w.fams)-1].text
	b = append(b, "# HELP "...)
	b = append(b, d.name...)
	b = append(b, ' ')
	b = append(b, escapeHelp.Replace(d.help)...)
	b = append(b, "\n# TYPE "...)
	b = append(b, d.name...)
	b = append(b, ' ')
	b = append(b, d.typ...)
	b = append(b, '\n')
	w.fams[len(w.fams)-1].text = b
}

// sorted orders a family's series by their labels, taken in order of
// label name, as client_golang did.
func (w *expo) sorted(d desc, keys []labelKey) []labelKey {
	order := labelOrder(d.labels)
	slices.SortFunc(keys, func(a, b labelKey) int {
		for _, i := range order {
			if c := cmp.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	return keys
}

// labelOrder is the indexes of names, sorted by name.
func labelOrder(names []string) []int {
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(names[a], names[b]) })
	return order
}

// sample appends one sample line to the family being written: name, the
// labels (sorted by name) and, when extra is set, one more label last
// (a histogram's le, a summary's quantile) with a float value.
func (w *expo) sample(name string, labels []string, k labelKey, extra string, extraValue, v float64) {
	b := w.fams[len(w.fams)-1].text
	b = append(b, name...)
	if len(labels) > 0 || extra != "" {
		b = append(b, '{')
		for n, i := range labelOrder(labels) {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, labels[i]...)
			b = append(b, `="`...)
			b = append(b, escapeLabel.Replace(k[i])...)
			b = append(b, '"')
		}
		if extra != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = append(b, extra...)
			b = append(b, `="`...)
			b = appendFloat(b, extraValue)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	b = append(b, '\n')
	w.fams[len(w.fams)-1].text = b
}

var (
	escapeHelp  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	escapeLabel = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// appendFloat writes v as the format wants it: +Inf, -Inf, NaN, else the
// shortest representation ('g').
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// bytes is the whole exposition, its families in order of name.
func (w *expo) bytes() []byte {
	slices.SortStableFunc(w.fams, func(a, b famText) int { return cmp.Compare(a.name, b.name) })
	var out []byte
	for _, f := range w.fams {
		out = append(out, f.text...)
	}
	return out
}

// contentType is the text format's, as Prometheus expects it.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// serveExposition answers a scrape with body, gzipped when the scraper
// accepts it (Prometheus does).
func serveExposition(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Write(body) //nolint:errcheck // the scraper went away
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	gz := gzip.NewWriter(w)
	gz.Write(body) //nolint:errcheck // the scraper went away
	gz.Close()     //nolint:errcheck // as above
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		coding, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

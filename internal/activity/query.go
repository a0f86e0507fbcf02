package activity

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"time"
)

// Filter selects records: of one model (asked for or served; "" all),
// since a time (zero: all), the newest Limit of them (0: 100).
type Filter struct {
	Model string
	Since time.Time
	Limit int
}

// Counts are the sums every total has: requests, errors among them, and
// the tokens of the answers.
type Counts struct {
	Requests         int `json:"requests"`
	Errors           int `json:"errors"`
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

func (c *Counts) add(r Record) {
	c.Requests++
	if r.Status >= 400 || r.Status == 0 {
		c.Errors++
	}
	if r.Tokens != nil {
		c.PromptTokens += r.Tokens.Prompt
		c.CompletionTokens += r.Tokens.Completion
	}
}

// Totals are one model's sums over the selected records.
type Totals struct {
	Model string `json:"model"`
	Counts
	Cold            int     `json:"cold_starts"`
	AvgTTFTMS       float64 `json:"avg_ttft_ms"`
	AvgTokensPerSec float64 `json:"avg_tokens_per_second"`
}

// Result is a query's answer: the records, newest first, and per-model
// totals over every record the filter selects (not only the newest Limit).
type Result struct {
	Records []Record `json:"records"`
	Totals  []Totals `json:"totals"`
	// Dropped counts records lost to a full queue since gantry started.
	Dropped int64 `json:"dropped,omitempty"`
	// Skipped counts the lines the query could not read (over-long,
	// corrupt, torn by a crash) and the segments it could not open.
	Skipped int `json:"skipped,omitempty"`
}

// Query reads the log, newest first, with everything added before it.
func (s *Store) Query(f Filter) (Result, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	res := Result{Records: []Record{}, Totals: []Totals{}, Dropped: s.Dropped()}
	sums := map[string]*Totals{}
	var ttft, tps = map[string]float64{}, map[string]float64{}
	var tpsN = map[string]int{}
	skipped, err := s.each(f.Since, func(r Record) {
		if f.Model != "" && r.Model != f.Model && r.Served != f.Model {
			return
		}
		if len(res.Records) < f.Limit {
			res.Records = append(res.Records, r)
		}
		name := r.Served
		if name == "" {
			name = r.Model
		}
		t := sums[name]
		if t == nil {
			t = &Totals{Model: name}
			sums[name] = t
		}
		t.add(r)
		if r.Cold {
			t.Cold++
		}
		ttft[name] += r.TTFTMS
		if r.TokensPerSecond > 0 {
			tps[name] += r.TokensPerSecond
			tpsN[name]++
		}
	})
	res.Skipped = skipped
	if err != nil {
		return res, err
	}
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		t := sums[name]
		t.AvgTTFTMS = ttft[name] / float64(t.Requests)
		if tpsN[name] > 0 {
			t.AvgTokensPerSec = tps[name] / float64(tpsN[name])
		}
		res.Totals = append(res.Totals, *t)
	}
	return res, nil
}

// each calls fn with every record since a time (zero: all), newest first,
// with everything added before it written; at most keep_rows of them. It
// counts the lines and segments it could not read (skipped).
func (s *Store) each(since time.Time, fn func(Record)) (skipped int, err error) {
	if s.o.memoryOnly() {
		return 0, nil
	}
	s.mu.Lock()
	s.drainLocked()
	segs := slices.Clone(s.segs)
	s.mu.Unlock()
	seen := 0
	// A segment past keep_days goes whole; its older records in a newer
	// segment are not shown either.
	if cut := s.o.Now().AddDate(0, 0, -s.o.KeepDays); since.Before(cut) {
		since = cut
	}
	for i := len(segs) - 1; i >= 0 && seen < s.o.KeepRows; i-- {
		if !since.IsZero() && !segs[i].last.IsZero() && segs[i].last.Before(since) {
			break // this one and all older ones end before since
		}
		recs, n, err := readSegment(segs[i].path)
		skipped += n
		if err != nil {
			if !os.IsNotExist(err) { // else removed by retention meanwhile
				skipped++
				s.lg.Warn("activity log: a segment could not be read; the query goes on without it", "file", segs[i].path, "err", err)
			}
			continue
		}
		for j := len(recs) - 1; j >= 0 && seen < s.o.KeepRows; j-- {
			seen++
			if !since.IsZero() && recs[j].Time.Before(since) {
				continue
			}
			fn(recs[j])
		}
	}
	return skipped, nil
}

// readSegment reads one segment's records, oldest first; a line that does
// not parse (a torn write at a crash) or is over-long is skipped and
// counted.
func readSegment(path string) (out []Record, skipped int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	long, err := eachLine(f, func(line []byte) {
		var r Record
		if json.Unmarshal(line, &r) == nil {
			out = append(out, r)
		} else {
			skipped++
		}
	})
	return out, skipped + long, err
}

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

// Totals are one model's sums over the selected records.
type Totals struct {
	Model            string  `json:"model"`
	Requests         int     `json:"requests"`
	Errors           int     `json:"errors"`
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	Cold             int     `json:"cold_starts"`
	AvgTTFTMS        float64 `json:"avg_ttft_ms"`
	AvgTokensPerSec  float64 `json:"avg_tokens_per_second"`
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
	s.mu.Lock()
	s.drainLocked()
	segs := slices.Clone(s.segs)
	s.mu.Unlock()
	res := Result{Records: []Record{}, Totals: []Totals{}, Dropped: s.Dropped()}
	sums := map[string]*Totals{}
	var ttft, tps = map[string]float64{}, map[string]float64{}
	var tpsN = map[string]int{}
	seen := 0
	// A segment past keep_days goes whole; its older records in a newer
	// segment are not shown either.
	if cut := s.o.Now().AddDate(0, 0, -s.o.KeepDays); f.Since.Before(cut) {
		f.Since = cut
	}
	for i := len(segs) - 1; i >= 0 && seen < s.o.KeepRows; i-- {
		if !f.Since.IsZero() && !segs[i].last.IsZero() && segs[i].last.Before(f.Since) {
			break // this one and all older ones end before since
		}
		recs, skipped, err := readSegment(segs[i].path)
		res.Skipped += skipped
		if err != nil {
			if !os.IsNotExist(err) { // else removed by retention meanwhile
				res.Skipped++
				s.lg.Warn("activity log: a segment could not be read; the query goes on without it", "file", segs[i].path, "err", err)
			}
			continue
		}
		for j := len(recs) - 1; j >= 0 && seen < s.o.KeepRows; j-- {
			r := recs[j]
			seen++
			if !f.Since.IsZero() && r.Time.Before(f.Since) {
				continue
			}
			if f.Model != "" && r.Model != f.Model && r.Served != f.Model {
				continue
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
			t.Requests++
			if r.Status >= 400 || r.Status == 0 {
				t.Errors++
			}
			if r.Tokens != nil {
				t.PromptTokens += r.Tokens.Prompt
				t.CompletionTokens += r.Tokens.Completion
			}
			if r.Cold {
				t.Cold++
			}
			ttft[name] += r.TTFTMS
			if r.TokensPerSecond > 0 {
				tps[name] += r.TokensPerSecond
				tpsN[name]++
			}
		}
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

package activity

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// ErrGrouping is Usage's error for a grouping it does not know.
var ErrGrouping = errors.New("unknown grouping")

// Groupings of Usage.
const (
	ByKey   = "key"
	ByModel = "model"
	ByDay   = "day"
)

// UsageRow is one group's usage: a key's (by name: "-" for requests
// without one), a model's (the one that served, else the one asked for),
// or a day's (local time).
type UsageRow struct {
	Key   string `json:"key,omitempty"`
	Model string `json:"model,omitempty"`
	Day   string `json:"day,omitempty"`
	Counts
	EngineSeconds float64 `json:"engine_seconds"`
}

// Usage is the log's totals since a time, grouped by key, model or day
// (GET /api/usage, gantry activity --by).
type Usage struct {
	By    string     `json:"by"`
	Since time.Time  `json:"since"`
	Rows  []UsageRow `json:"usage"`
}

// Usage totals every record since a time by key, model or day: requests,
// errors, tokens in and out, and engine-seconds held.
func (s *Store) Usage(by string, since time.Time) (Usage, error) {
	u := Usage{By: by, Since: since, Rows: []UsageRow{}}
	group, err := grouping(by)
	if err != nil {
		return u, err
	}
	rows := map[string]*UsageRow{}
	_, err = s.each(since, func(r Record) {
		g := group(r)
		row := rows[g]
		if row == nil {
			row = &UsageRow{}
			switch by {
			case ByKey:
				row.Key = g
			case ByModel:
				row.Model = g
			default:
				row.Day = g
			}
			rows[g] = row
		}
		row.add(r)
		row.EngineSeconds += r.HeldMS / 1000
	})
	for _, g := range slices.Sorted(maps.Keys(rows)) {
		u.Rows = append(u.Rows, *rows[g])
	}
	return u, err
}

// grouping is the group a record counts in, for by.
func grouping(by string) (func(Record) string, error) {
	switch by {
	case ByKey:
		return func(r Record) string { return orDash(r.Key) }, nil
	case ByModel:
		return func(r Record) string {
			if r.Served != "" {
				return r.Served
			}
			return orDash(r.Model)
		}, nil
	case ByDay:
		return func(r Record) string { return r.Time.Local().Format(time.DateOnly) }, nil
	}
	return nil, fmt.Errorf("%w: by=%s: group by key, model or day", ErrGrouping, by)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

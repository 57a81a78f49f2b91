package main

import (
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	local := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.Local)
	}
	tests := []struct {
		doc, in string
		want    time.Time
	}{
		{"duration", "10m", now.Add(-10 * time.Minute)},
		{"compound duration", "1h30m", now.Add(-90 * time.Minute)},
		{"zero duration is now", "0s", now},
		{"RFC 3339 UTC", "2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{"RFC 3339 nanoseconds", "2026-01-02T15:04:05.123456789Z", time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)},
		{"RFC 3339 with offset", "2026-01-02T15:04:05+02:00", time.Date(2026, 1, 2, 13, 4, 5, 0, time.UTC)},
		{"no zone is local", "2026-01-02T15:04:05", local(2026, 1, 2, 15, 4, 5, 0)},
		{"minutes only", "2026-01-02T15:04", local(2026, 1, 2, 15, 4, 0, 0)},
		{"date only is local midnight", "2026-01-02", local(2026, 1, 2, 0, 0, 0, 0)},
		{"unix seconds", "1767366245", time.Unix(1767366245, 0)},
		{"unix with fraction", "1767366245.5", time.Unix(1767366245, 500000000)},
		{"unix with nanoseconds", "1767366245.000000001", time.Unix(1767366245, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			got, err := parseSince(tt.in, now)
			if err != nil {
				t.Fatalf("parseSince(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("parseSince(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseSinceRejects(t *testing.T) {
	for _, in := range []string{"", "yesterday", "-10m", "1767366245.1234567890", "2026-13-01", "12:00", "1.2.3"} {
		t.Run(in, func(t *testing.T) {
			if got, err := parseSince(in, time.Now()); err == nil {
				t.Fatalf("parseSince(%q) = %v, want an error", in, got)
			}
		})
	}
}

func TestReadOptionsTail(t *testing.T) {
	tests := []struct {
		doc, in string
		want    int
		bad     bool
	}{
		{"all", "all", -1, false},
		{"empty means all", "", -1, false},
		{"number", "25", 25, false},
		{"zero", "0", 0, false},
		{"negative", "-1", 0, true},
		{"word", "ten", 0, true},
		{"trailing junk", "10x", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			opts, err := readOptions(tt.in, "", false)
			if (err != nil) != tt.bad {
				t.Fatalf("readOptions(%q): err %v, want error %v", tt.in, err, tt.bad)
			}
			if !tt.bad && opts.Tail != tt.want {
				t.Fatalf("readOptions(%q).Tail = %d, want %d", tt.in, opts.Tail, tt.want)
			}
		})
	}
}

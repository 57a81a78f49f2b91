package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tether-run/tether/crilog"
)

func cmdLogs(ctx context.Context, g *globals, args []string) error {
	var follow, stamps *bool
	var tail, since, execID *string
	c, err := load(ctx, g, "logs", args, func(fs *flagSet) {
		follow = fs.Bool("f", false, "follow new output until the process exits")
		fs.BoolVar(follow, "follow", false, "same as -f")
		tail = fs.String("tail", "all", "show the last N lines")
		fs.StringVar(tail, "n", "all", "same as --tail")
		since = fs.String("since", "", "show lines since a time (2026-01-02T15:04:05Z, 2026-01-02, a Unix time) or a duration ago (10m)")
		stamps = fs.Bool("timestamps", false, "prefix each line with its time")
		fs.BoolVar(stamps, "t", false, "same as --timestamps")
		execID = fs.String("exec-id", "", "show the output of this exec'd process")
	})
	if err != nil {
		return err
	}
	opts, err := readOptions(*tail, *since, *stamps)
	if err != nil {
		return err
	}
	log, err := c.Log(*execID)
	if err != nil {
		return err
	}
	if _, err := os.Stat(log.Path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no log at %s: is the container or exec ID right?", log.Path)
	}
	if !*follow {
		return crilog.Dump(log.Path, opts, os.Stdout, os.Stderr)
	}
	err = crilog.Follow(ctx, log.Path, opts, os.Stdout, os.Stderr, log.Done)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func readOptions(tail, since string, stamps bool) (crilog.ReadOptions, error) {
	opts := crilog.ReadOptions{Tail: -1, Timestamps: stamps}
	if tail != "all" && tail != "" {
		n, err := strconv.Atoi(tail)
		if err != nil || n < 0 {
			return opts, fmt.Errorf("--tail %q: use a number of lines or 'all'", tail)
		}
		opts.Tail = n
	}
	if since == "" {
		return opts, nil
	}
	t, err := parseSince(since, time.Now())
	if err != nil {
		return opts, err
	}
	opts.Since = t
	return opts, nil
}

// sinceLayouts are the absolute times --since accepts, as docker logs
// does; a layout without a zone is local time.
var sinceLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02Z07:00",
	"2006-01-02",
}

// parseSince reads a --since value: a duration before now (10m, 1h30m), a
// Unix time in seconds with an optional fraction (1700000000.5), or a
// date and time in one of sinceLayouts.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, ok := parseUnix(v); ok {
		return t, nil
	}
	for _, layout := range sinceLayouts {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: use a time such as 2026-01-02T15:04:05Z or 2026-01-02, a Unix time such as 1767366245, or a duration such as 10m", v)
}

// parseUnix reads seconds since 1970 with up to nine fraction digits.
func parseUnix(v string) (time.Time, bool) {
	sec, frac, _ := strings.Cut(v, ".")
	if sec == "" || len(frac) > 9 || strings.Trim(sec+frac, "0123456789") != "" {
		return time.Time{}, false
	}
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var ns int64
	if frac != "" {
		ns, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return time.Unix(s, ns), true
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/runtime"
	"github.com/tether-run/tether/shim"
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
	if *execID != "" {
		if err := shim.ValidID(*execID); err != nil {
			return err
		}
	}
	path, exitDir, exitName := logFiles(c, *execID)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no log at %s: is the container or exec ID right?", path)
	}
	if !*follow {
		return crilog.Dump(path, opts, os.Stdout, os.Stderr)
	}
	err = crilog.Follow(ctx, path, opts, os.Stdout, os.Stderr, writerDone(c.Dir(), exitDir, exitName))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// logFiles returns the log of init (exec "") or of an exec'd process,
// and the folder and name of its exit record.
func logFiles(c *runtime.Container, exec string) (path, exitDir, exitName string) {
	if exec == "" {
		return c.LogPath(), c.Dir(), shim.ExitFile
	}
	exitDir = filepath.Join(c.Dir(), shim.ExecDir)
	return filepath.Join(exitDir, exec+".log"), exitDir, exec + ".exit.json"
}

// writerDone returns Follow's done function: the log is complete once
// the process's exit record exists (the shim writes it after the last
// output was drained into the log), the container folder is gone (deleted),
// or the shim is gone (nobody writes any more).
func writerDone(dir, exitDir, exitName string) func() bool {
	return func() bool {
		if _, err := os.Stat(filepath.Join(exitDir, exitName)); err == nil {
			return true
		}
		if _, err := os.Stat(dir); err != nil {
			return true
		}
		id, err := shim.ReadPid(dir, shim.ShimPidFile)
		return err == nil && !id.Alive()
	}
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

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tether-run/tether/crilog"
)

func logsCmd(g *globals) *cobra.Command {
	var o logsFlags
	cmd := &cobra.Command{
		Use:   "logs [flags] ID",
		Short: "Print a container's output from its log",
		Long: "Print a container's (or an exec'd process's) output, decoded from its log: stdout to stdout,\n" +
			"stderr to stderr. With -f, follow new output until the process exits.",
		Example: "  tether logs c1\n  tether logs -f --tail 10 c1\n  tether logs --since 10m --timestamps c1\n  tether logs --exec-id e1 c1",
		Args:    oneID, ValidArgsFunction: g.completeIDs(nil),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdLogs(cmd.Context(), g, args[0], o)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&o.follow, "follow", "f", false, "follow new output until the process exits")
	fs.StringVarP(&o.tail, "tail", "n", "all", "show the last N lines")
	fs.StringVar(&o.since, "since", "", "show lines since a time (2026-01-02T15:04:05Z, 2026-01-02, a Unix time) or a duration ago (10m)")
	fs.BoolVarP(&o.stamps, "timestamps", "t", false, "prefix each line with its time")
	fs.StringVar(&o.execID, "exec-id", "", "show the output of this exec'd process")
	return cmd
}

// logsFlags are the options of logs.
type logsFlags struct {
	follow, stamps      bool
	tail, since, execID string
}

func cmdLogs(ctx context.Context, g *globals, id string, o logsFlags) error {
	opts, err := readOptions(o.tail, o.since, o.stamps)
	if err != nil {
		return usageError{error: err}
	}
	c, err := loadOne(ctx, g, id)
	if err != nil {
		return err
	}
	log, err := c.Log(o.execID)
	if err != nil {
		return err
	}
	if _, err := os.Stat(log.Path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no log at %s: is the container or exec ID right?", log.Path)
	}
	if !o.follow {
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

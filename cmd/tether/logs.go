package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/shim"
)

func cmdLogs(ctx context.Context, g *globals, args []string) error {
	var follow, stamps *bool
	var tail, since, execID *string
	c, err := load(ctx, g, "logs", args, func(fs *flagSet) {
		follow = fs.Bool("f", false, "follow new output until the process exits")
		fs.BoolVar(follow, "follow", false, "same as -f")
		tail = fs.String("tail", "all", "show the last N lines")
		since = fs.String("since", "", "show lines since a time (RFC 3339) or a duration ago (10m)")
		stamps = fs.Bool("timestamps", false, "prefix each line with its time")
		execID = fs.String("exec-id", "", "show the output of this exec'd process")
	})
	if err != nil {
		return err
	}
	opts, err := readOptions(*tail, *since, *stamps)
	if err != nil {
		return err
	}
	path, exitDir, exitName := c.LogPath(), c.Dir(), shim.ExitFile
	if *execID != "" {
		if err := shim.ValidID(*execID); err != nil {
			return err
		}
		exitDir = filepath.Join(c.Dir(), shim.ExecDir)
		path, exitName = filepath.Join(exitDir, *execID+".log"), *execID+".exit.json"
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no log at %s: is the container or exec ID right?", path)
	}
	if !*follow {
		return crilog.Dump(path, opts, os.Stdout, os.Stderr)
	}
	done := func() bool {
		_, err := os.Stat(filepath.Join(exitDir, exitName))
		_, derr := os.Stat(c.Dir())
		return err == nil || derr != nil
	}
	err = crilog.Follow(ctx, path, opts, os.Stdout, os.Stderr, done)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func readOptions(tail, since string, stamps bool) (crilog.ReadOptions, error) {
	opts := crilog.ReadOptions{Tail: -1, Timestamps: stamps}
	if tail != "all" && tail != "" {
		if _, err := fmt.Sscan(tail, &opts.Tail); err != nil || opts.Tail < 0 {
			return opts, fmt.Errorf("--tail %q: use a number of lines or 'all'", tail)
		}
	}
	if since == "" {
		return opts, nil
	}
	if d, err := time.ParseDuration(since); err == nil && !strings.HasPrefix(since, "-") {
		opts.Since = time.Now().Add(-d)
		return opts, nil
	}
	t, err := time.Parse(time.RFC3339Nano, since)
	if err != nil {
		return opts, fmt.Errorf("--since %q: use a time such as 2026-01-02T15:04:05Z or a duration such as 10m", since)
	}
	opts.Since = t
	return opts, nil
}

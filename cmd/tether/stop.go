package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tether-run/tether/runtime"
)

// defaultStopTime is how long stop waits after its signal before it kills
// every process of the container, as docker's and podman's default.
const defaultStopTime = 10

func stopCmd(g *globals) *cobra.Command {
	var sigName string
	var secs int
	cmd := &cobra.Command{
		Use:   "stop [flags] ID...",
		Short: "Stop containers: a signal to init, then SIGKILL to every process after a grace time",
		Long: "Stop each container as docker stop does: send init --signal (TERM), thawing a paused\n" +
			"container so it can act on it, wait up to --time seconds for it to exit, then kill every\n" +
			"process of the container and wait for that. A created container is killed at once; a\n" +
			"stopped one is left as it is. The container stays, stopped: delete (rm) removes it.\n" +
			"With several IDs every one is tried; on a terminal the progress is shown.",
		Example: "  tether stop c1\n  tether stop -t 2 c1 c2\n  tether stop -s INT c1\n  tether stop $(tether ps -q)",
		Args:    someIDs, ValidArgsFunction: g.completeIDs(withStatus("running", "paused", "created")),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdStop(cmd.Context(), g, args, sigName, secs)
		},
	}
	cmd.Flags().StringVarP(&sigName, "signal", "s", "TERM", "signal to send first: name (TERM, SIGINT, hup) or number")
	cmd.Flags().IntVarP(&secs, "time", "t", defaultStopTime, "seconds to wait for the exit before killing every process")
	return cmd
}

// cmdStop stops each container, a few at a time (see forEach).
func cmdStop(ctx context.Context, g *globals, ids []string, sigName string, secs int) error {
	sig, err := parseSignal(sigName)
	if err != nil {
		return usageError{error: err}
	}
	if secs < 0 {
		return usagef("--time %d: give the seconds to wait, 0 or more", secs)
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	stop := func(ctx context.Context, id string) error {
		c, err := m.Load(ctx, id)
		if err != nil {
			return err
		}
		return stopOne(ctx, c, sig, time.Duration(secs)*time.Second)
	}
	if len(ids) == 1 {
		return stop(ctx, ids[0])
	}
	return forEach(ctx, g, "stopping", ids, stop)
}

// stopOne stops c: sig to init (a paused container is thawed after it, so
// that it can act on it), then SIGKILL to every process once grace has
// passed; it returns when init has exited.
func stopOne(ctx context.Context, c *runtime.Container, sig syscall.Signal, grace time.Duration) error {
	st, err := c.State(ctx)
	if err != nil {
		return err
	}
	switch st.Status {
	case runtime.StatusStopped:
		return nil
	case runtime.StatusCreated:
		grace = 0 // its init never ran the command: nothing to let finish
	case runtime.StatusRunning, runtime.StatusPaused:
	default:
		return &runtime.RemedyError{Remedy: st.Remedy, ID: c.ID(),
			Err: fmt.Errorf("stop %s: status %s: %s", c.ID(), st.Status, st.Reason)}
	}
	if grace > 0 {
		if err := c.Kill(ctx, sig, false); err != nil && !errors.Is(err, runtime.ErrNotRunning) {
			return err
		}
		if st.Status == runtime.StatusPaused {
			if err := c.Resume(ctx); err != nil && !errors.Is(err, runtime.ErrNotRunning) {
				return err
			}
		}
		if exited, err := waitUpTo(ctx, c, grace); exited || err != nil {
			return err
		}
	}
	if err := c.Kill(ctx, syscall.SIGKILL, true); err != nil && !errors.Is(err, runtime.ErrNotRunning) {
		return err
	}
	_, err = c.Wait(ctx)
	return err
}

// waitUpTo waits for init's exit for at most d; it reports whether init
// exited. Only an error other than the time running out is returned.
func waitUpTo(ctx context.Context, c *runtime.Container, d time.Duration) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := c.Wait(wctx)
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case wctx.Err() != nil:
		return false, nil
	}
	return false, err
}

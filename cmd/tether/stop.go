package main

import (
	"context"
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
		Long: "Stop each container as docker stop does: send init --signal (the bundle's stop signal\n" +
			"annotation, or TERM), thawing a paused container so it can act on it, wait up to --time\n" +
			"seconds for it to exit, then kill every process of the container and wait for that. The\n" +
			"container's shim does all of it, so the stop completes even if this command is killed.\n" +
			"A created container is killed at once; a stopped one is left as it is. The container\n" +
			"stays, stopped: delete (rm) removes it. With several IDs every one is tried; on a\n" +
			"terminal the progress is shown.",
		Example: "  tether stop c1\n  tether stop -t 2 c1 c2\n  tether stop -s INT c1\n  tether stop $(tether ps -q)",
		Args:    someIDs, ValidArgsFunction: g.completeIDs(withStatus("running", "paused", "created")),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdStop(cmd.Context(), g, args, sigName, secs)
		},
	}
	cmd.Flags().StringVarP(&sigName, "signal", "s", "", "signal to send first: name (TERM, SIGINT, hup) or number (default: the bundle's org.opencontainers.image.stopSignal annotation, or TERM)")
	cmd.Flags().IntVarP(&secs, "time", "t", defaultStopTime, "seconds to wait for the exit before killing every process")
	return cmd
}

// cmdStop stops each container, a few at a time (see forEach).
func cmdStop(ctx context.Context, g *globals, ids []string, sigName string, secs int) error {
	var sig syscall.Signal // 0: the bundle's stop signal, or TERM
	if sigName != "" {
		var err error
		if sig, err = parseSignal(sigName); err != nil {
			return usageError{error: err}
		}
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
	// The shim does the stop (signal, thaw, grace, KILL to all), so it
	// completes even if this command is killed meanwhile.
	_, err = c.Stop(ctx, runtime.StopOpts{Signal: sig, Grace: grace, NoGrace: grace == 0})
	return err
}

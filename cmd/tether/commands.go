package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/runtime"
)

func bundleCmd(g *globals) *cobra.Command {
	var tty bool
	cmd := &cobra.Command{
		Use:   "bundle [flags] DIR [-- CMD ARG...]",
		Short: "Write an OCI bundle with a busybox rootfs",
		Long: "Write an OCI bundle in DIR (which must not exist or be empty): a rootfs with the host's static\n" +
			"busybox and a link per applet, and a config.json with the defaults of 'runc spec' running CMD\n" +
			"(default sh).",
		Example: "  tether bundle /tmp/b -- sh -c 'echo hi; sleep 1000'\n  tether bundle -t /tmp/tty",
		Args: func(cmd *cobra.Command, args []string) error {
			if n := positionalBeforeDash(cmd, args); n != 1 {
				return usagef("expected one folder, got %d arguments", n)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdBundle(g, args[0], args[1:], tty)
		},
	}
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "the process gets a terminal (process.terminal true)")
	return cmd
}

// positionalBeforeDash counts the arguments before "--".
func positionalBeforeDash(cmd *cobra.Command, args []string) int {
	if n := cmd.ArgsLenAtDash(); n >= 0 {
		return n
	}
	return len(args)
}

func cmdBundle(_ *globals, dir string, command []string, tty bool) error {
	opts := bundle.Options{Args: command, Terminal: tty}
	if len(command) == 0 {
		opts.Args = []string{"sh"}
	}
	var err error
	if opts.Rootless, err = bundle.DetectRootless(); err != nil {
		return err
	}
	return bundle.Write(dir, opts)
}

// createFlags are the flags create and run share (container.go).

func createCmd(g *globals) *cobra.Command {
	cf := &createFlags{}
	cmd := &cobra.Command{
		Use:   "create [flags] ID [--] [CMD ARG...]",
		Short: "Create a container under its own shim, without starting it",
		Long: "Create a container under its own tether-shim and leave it created; 'tether start' starts it.\n" +
			containerSourceHelp,
		Example: "  tether create --bundle /tmp/b c1\n" +
			"  tether create --name c2 -e GREETING=hi -- sh -c 'echo $GREETING'",
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, command, err := cf.idAndCommand(cmd, args)
			if err != nil {
				return err
			}
			return cmdCreate(cmd.Context(), g, id, command, cf)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cf.register(cmd)
	return cmd
}

func cmdCreate(ctx context.Context, g *globals, id string, command []string, cf *createFlags) error {
	bundleDir, opts, err := cf.opts(command)
	if err != nil {
		return err
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	_, err = m.Create(ctx, id, bundleDir, opts)
	return createHint(err, bundleDir, opts)
}

// loadOne loads the container id.
func loadOne(ctx context.Context, g *globals, id string) (*runtime.Container, error) {
	m, err := g.manager()
	if err != nil {
		return nil, err
	}
	return m.Load(ctx, id)
}

// simpleCmd wires a command that takes one container ID and no flags.
func simpleCmd(g *globals, use, short, example string, complete idFilter, body func(context.Context, *runtime.Container) error) *cobra.Command {
	return &cobra.Command{
		Use: use + " [flags] ID", Short: short, Example: example, Args: oneID,
		ValidArgsFunction: g.completeIDs(complete),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadOne(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			return body(cmd.Context(), c)
		},
	}
}

func startCmd(g *globals) *cobra.Command {
	return simpleCmd(g, "start", "Start a created container", "  tether start c1", withStatus("created"),
		func(ctx context.Context, c *runtime.Container) error { return c.Start(ctx) })
}

func pauseCmd(g *globals) *cobra.Command {
	return simpleCmd(g, "pause", "Freeze every process of a container", "  tether pause c1", withStatus("running"),
		func(ctx context.Context, c *runtime.Container) error { return c.Pause(ctx) })
}

func resumeCmd(g *globals) *cobra.Command {
	cmd := simpleCmd(g, "resume", "Thaw a paused container", "  tether resume c1", withStatus("paused"),
		func(ctx context.Context, c *runtime.Container) error { return c.Resume(ctx) })
	cmd.Aliases = []string{"unpause"}
	return cmd
}

func killCmd(g *globals) *cobra.Command {
	var sigName, execID string
	var all bool
	cmd := &cobra.Command{
		Use:     "kill [flags] ID",
		Short:   "Signal init (or every process, or one exec'd process)",
		Example: "  tether kill c1\n  tether kill --signal KILL c1\n  tether kill -s HUP --exec-id e1 c1",
		Args:    oneID, ValidArgsFunction: g.completeIDs(withStatus("running", "paused", "created")),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdKill(cmd.Context(), g, args[0], sigName, execID, all)
		},
	}
	cmd.Flags().StringVarP(&sigName, "signal", "s", "TERM", "signal name (TERM, SIGKILL, hup) or number")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "signal every process of the container")
	cmd.Flags().StringVar(&execID, "exec-id", "", "signal this exec'd process instead of init")
	return cmd
}

func cmdKill(ctx context.Context, g *globals, id, sigName, execID string, all bool) error {
	sig, err := parseSignal(sigName)
	if err != nil {
		return usageError{error: err}
	}
	if all && execID != "" {
		return usagef("--all signals every process of the container; --exec-id signals one: use one of them")
	}
	c, err := loadOne(ctx, g, id)
	if err != nil {
		return err
	}
	return c.KillExec(ctx, execID, sig, all)
}

func waitCmd(g *globals) *cobra.Command {
	var execID string
	cmd := &cobra.Command{
		Use:     "wait [flags] ID",
		Short:   "Wait for the exit, print the status and exit with it",
		Example: "  tether wait c1\n  tether wait --exec-id e1 c1",
		Args:    oneID, ValidArgsFunction: g.completeIDs(nil),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdWait(cmd.Context(), g, args[0], execID)
		},
	}
	cmd.Flags().StringVar(&execID, "exec-id", "", "wait for this exec'd process instead of init")
	return markChildStatus(cmd)
}

func cmdWait(ctx context.Context, g *globals, id, execID string) error {
	c, err := loadOne(ctx, g, id)
	if err != nil {
		return err
	}
	exit, err := c.WaitExec(ctx, execID)
	if err != nil {
		return err
	}
	if c.Removed() && exit.Reason != "" {
		// This call removed it: nothing is left to ask why later.
		fmt.Fprintf(g.stderr, "tether wait: %s: exit status %d: %s; the container was removed (--rm)\n", id, exit.Status, exit.Reason)
	}
	fmt.Fprintln(g.stdout, exit.Status)
	return exitError{exit.Status}
}

func deleteCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "delete [flags] ID...",
		Aliases: []string{"rm"},
		Short:   "Remove containers, their shims and their folders",
		Long: "Remove each container: its shim, the runtime's container (mounts, cgroups) and its folder.\n" +
			"A running or paused container is refused unless --force, which kills it first and also clears\n" +
			"broken state. With several IDs every one is tried; on a terminal the progress is shown.",
		Example: "  tether delete c1\n  tether rm -f $(tether ps -aq)",
		Args:    someIDs, ValidArgsFunction: g.completeIDs(nil),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdDelete(cmd.Context(), g, args, force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first; clear broken state")
	return cmd
}

// cmdDelete deletes each container, a few at a time. With one ID its
// error is returned as is; with several, each failure is printed on its
// own line and the command fails at the end.
func cmdDelete(ctx context.Context, g *globals, ids []string, force bool) error {
	m, err := g.manager()
	if err != nil {
		return err
	}
	del := func(ctx context.Context, id string) error {
		c, err := m.Load(ctx, id)
		if err != nil {
			return err
		}
		return deleteHint(c, c.Delete(ctx, force))
	}
	if len(ids) == 1 {
		return del(ctx, ids[0])
	}
	return forEach(ctx, g, "deleting", ids, del)
}

// parseSize reads 0, 1024, 10K, 10M, 1G (and 10k, 10m, 10MiB, 10MB).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	t := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I"))
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	var n int64
	if _, err := fmt.Sscan(t, &n); err != nil || n < 0 || fmt.Sprint(n) != t {
		return 0, fmt.Errorf("size %q: use a number of bytes, optionally with K, M or G", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

var errNoCommand = errors.New("no command: give it after the container ID (after -- if it has flags of its own)")

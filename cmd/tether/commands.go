package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/runtime"
)

func init() {
	commands = []*command{
		{name: "bundle", usage: "[-t] DIR [-- CMD ARG...]", summary: "write an OCI bundle with a busybox rootfs", run: cmdBundle},
		{name: "create", usage: "[--bundle DIR] [-t] [-i] [--log-max-size N] [--log-max-files N] ID", summary: "create a container under its own shim", run: cmdCreate},
		{name: "start", usage: "ID", summary: "start a created container", run: cmdStart},
		{name: "run", usage: "[--bundle DIR] [-d] [-t] [-i] [--rm] ID", summary: "create and start; without -d stream output and exit with its status", childStatus: true, run: cmdRun},
		{name: "exec", usage: "[-d] [-t] [-i] [--exec-id NAME] ID -- CMD ARG...", summary: "run a process in a running container", childStatus: true, run: cmdExec},
		{name: "kill", usage: "[--signal SIG] [--all] [--exec-id NAME] ID", summary: "signal init (or every process, or one exec'd process)", run: cmdKill},
		{name: "wait", usage: "[--exec-id NAME] ID", summary: "wait for the exit, print the status and exit with it", childStatus: true, run: cmdWait},
		{name: "state", usage: "ID", summary: "print the state as one JSON object", run: cmdState},
		{name: "list", usage: "[--format table|json] [-q]", summary: "list containers", run: cmdList},
		{name: "logs", usage: "[-f] [--tail N] [--since TIME] [--timestamps] [--exec-id NAME] ID", summary: "print the output from the log", run: cmdLogs},
		{name: "attach", usage: "[--no-stdin] ID", summary: "stream live output and forward input", childStatus: true, run: cmdAttach},
		{name: "pause", usage: "ID", summary: "freeze every process of a container", run: cmdPause},
		{name: "resume", usage: "ID", summary: "thaw a paused container", run: cmdResume},
		{name: "delete", usage: "[--force] ID", summary: "remove a container, its shim and its folder", run: cmdDelete},
	}
}

func cmdBundle(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("bundle", g)
	tty := fs.Bool("t", false, "process.terminal true")
	pos, rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("expected one folder, got %d arguments", len(pos))}
	}
	opts := bundle.Options{Args: rest, Terminal: *tty}
	if len(rest) == 0 {
		opts.Args = []string{"sh"}
	}
	return bundle.Write(pos[0], opts)
}

type createFlags struct {
	bundle      *string
	tty, stdin  *bool
	logMaxSize  *string
	logMaxFiles *int
}

func addCreateFlags(fs *flagSet) createFlags {
	return createFlags{
		bundle:      fs.String("bundle", ".", "bundle folder"),
		tty:         fs.Bool("t", false, "allocate a terminal"),
		stdin:       fs.Bool("i", false, "keep stdin open"),
		logMaxSize:  fs.String("log-max-size", "0", "rotate the output log past this size (e.g. 10M); 0 never"),
		logMaxFiles: fs.Int("log-max-files", 1, "rotated output logs kept"),
	}
}

func (f createFlags) opts() (runtime.CreateOpts, error) {
	size, err := parseSize(*f.logMaxSize)
	if err != nil {
		return runtime.CreateOpts{}, usageError{err}
	}
	if *f.logMaxFiles < 1 {
		return runtime.CreateOpts{}, usageError{fmt.Errorf("--log-max-files %d: keep at least 1", *f.logMaxFiles)}
	}
	return runtime.CreateOpts{Terminal: *f.tty, Stdin: *f.stdin, LogMaxSize: size, LogMaxFiles: *f.logMaxFiles}, nil
}

func cmdCreate(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("create", g)
	cf := addCreateFlags(fs)
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	opts, err := cf.opts()
	if err != nil {
		return err
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	_, err = m.Create(ctx, id, *cf.bundle, opts)
	return err
}

// load parses the flags of a command that takes one ID and loads it.
func load(ctx context.Context, g *globals, name string, args []string, extra func(*flagSet)) (*runtime.Container, error) {
	return loadChecked(ctx, g, name, args, extra, nil)
}

// loadChecked is load with check (if not nil) run on the parsed flags
// before the root is read, so a bad flag value is reported as such
// whatever the state of the container.
func loadChecked(ctx context.Context, g *globals, name string, args []string, extra func(*flagSet), check func() error) (*runtime.Container, error) {
	fs := newFlags(name, g)
	if extra != nil {
		extra(fs)
	}
	id, err := parseID(fs, args)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, err
		}
	}
	m, err := g.manager()
	if err != nil {
		return nil, err
	}
	return m.Load(ctx, id)
}

func cmdStart(ctx context.Context, g *globals, args []string) error {
	c, err := load(ctx, g, "start", args, nil)
	if err != nil {
		return err
	}
	return c.Start(ctx)
}

func cmdPause(ctx context.Context, g *globals, args []string) error {
	c, err := load(ctx, g, "pause", args, nil)
	if err != nil {
		return err
	}
	return c.Pause(ctx)
}

func cmdResume(ctx context.Context, g *globals, args []string) error {
	c, err := load(ctx, g, "resume", args, nil)
	if err != nil {
		return err
	}
	return c.Resume(ctx)
}

func cmdKill(ctx context.Context, g *globals, args []string) error {
	var sigName, execID *string
	var all *bool
	var sig syscall.Signal
	c, err := loadChecked(ctx, g, "kill", args, func(fs *flagSet) {
		sigName = fs.String("signal", "TERM", "signal name or number")
		all = fs.Bool("all", false, "signal every process of the container")
		execID = fs.String("exec-id", "", "signal this exec'd process")
	}, func() error {
		var err error
		if sig, err = parseSignal(*sigName); err != nil {
			return usageError{err}
		}
		if *all && *execID != "" {
			return usageError{errors.New("--all signals every process of the container; --exec-id signals one: use one of them")}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.KillExec(ctx, *execID, sig, *all)
}

func cmdWait(ctx context.Context, g *globals, args []string) error {
	var execID *string
	c, err := load(ctx, g, "wait", args, func(fs *flagSet) {
		execID = fs.String("exec-id", "", "wait for this exec'd process")
	})
	if err != nil {
		return err
	}
	exit, err := c.WaitExec(ctx, *execID)
	if err != nil {
		return err
	}
	fmt.Println(exit.Status)
	return exitError{exit.Status}
}

func cmdState(ctx context.Context, g *globals, args []string) error {
	c, err := load(ctx, g, "state", args, nil)
	if err != nil {
		return err
	}
	st, err := c.State(ctx)
	if err != nil {
		return err
	}
	return printJSON(st)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdList(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("list", g)
	format := fs.String("format", "table", "table or json")
	quiet := fs.Bool("q", false, "print IDs only")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Errorf("list takes no arguments")}
	}
	if *format != "table" && *format != "json" {
		return usageError{fmt.Errorf("--format %q: use table or json", *format)}
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	states, err := m.List(ctx)
	if err != nil {
		return err
	}
	switch {
	case *quiet:
		for _, st := range states {
			fmt.Println(st.ID)
		}
	case *format == "json":
		if states == nil {
			states = []*runtime.State{}
		}
		return printJSON(states)
	default:
		printTable(states)
	}
	return nil
}

func printTable(states []*runtime.State) {
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATUS\tPID\tSHIM PID\tEXIT\tEXECS\tCREATED\tBUNDLE")
	for _, st := range states {
		exit, created := "-", "-"
		if st.ExitStatus != nil {
			exit = fmt.Sprint(*st.ExitStatus)
		}
		if st.CreatedAt != nil {
			created = st.CreatedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", st.ID, st.Status, st.Pid, st.ShimPid, exit, liveExecs(st), created, st.Bundle)
	}
	w.Flush()
}

// liveExecs counts the exec'd processes that have not exited (running or
// paused); finished ones are in 'tether state'.
func liveExecs(st *runtime.State) int {
	n := 0
	for _, e := range st.Execs {
		if e.ExitStatus == nil {
			n++
		}
	}
	return n
}

func cmdDelete(ctx context.Context, g *globals, args []string) error {
	var force *bool
	c, err := load(ctx, g, "delete", args, func(fs *flagSet) {
		force = fs.Bool("force", false, "kill a running container first; clear broken state")
		fs.BoolVar(force, "f", false, "same as --force")
	})
	if err != nil {
		return err
	}
	return deleteHint(c, c.Delete(ctx, *force))
}

// parseSize reads 0, 1024, 10K, 10M, 1G.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	t := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(s, "B"), "i"))
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

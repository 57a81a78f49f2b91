package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/runtime"
)

func runCmd(g *globals) *cobra.Command {
	cf := &createFlags{}
	var detach bool
	cmd := &cobra.Command{
		Use:   "run [flags] ID [--] [CMD ARG...]",
		Short: "Create and start a container; without -d stream its output and exit with its status",
		Long: "Create and start a container. Without -d, stream its output, forward signals (and stdin with\n" +
			"-i, the terminal with -t) and exit with its status. With --rm its shim removes it once it has\n" +
			"exited, with -d too and even if no tether runs then; without -d, run returns once it is removed.\n" +
			containerSourceHelp,
		Example: "  tether run c1 -- echo hello\n" +
			"  tether run -it --rm shell\n" +
			"  tether run -d --rm job -- sh -c 'work; exit 3'; tether wait job   # prints 3; job is gone\n" +
			"  tether run -d --name web --memory 64m --cpus 0.5 -v /srv/data:/data:ro -- httpd -f -p 8080\n" +
			"  tether run --rootfs /srv/alpine -u 1000:1000 -w /tmp -e HOME=/tmp c2 -- sh\n" +
			"  tether run -d --bundle /tmp/b c3",
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, command, err := cf.idAndCommand(cmd, args)
			if err != nil {
				return err
			}
			return cmdRun(cmd.Context(), g, id, command, cf, detach)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cf.register(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the container runs")
	return markForwardsSignals(markChildStatus(cmd))
}

func cmdRun(ctx context.Context, g *globals, id string, command []string, cf *createFlags, detach bool) error {
	bundleDir, opts, err := cf.opts(command)
	if err != nil {
		return err
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	c, err := m.Create(ctx, id, bundleDir, opts)
	if err != nil {
		return createHint(err, bundleDir, opts)
	}
	if detach {
		return startOrUndo(ctx, c)
	}
	status, err := foreground(ctx, session{c: c, tty: opts.Terminal, stdin: opts.Stdin, fromStart: true,
		begin: func() error { return startOrUndo(ctx, c) }})
	if err != nil {
		return err
	}
	if opts.AutoRemove {
		// The shim removes it (even if this process is killed now); a
		// delete waits for that, or does it if the shim has not begun,
		// so the ID is free once run returns.
		if derr := c.Delete(context.WithoutCancel(ctx), false); derr != nil {
			return derr
		}
	}
	return exitError{status}
}

// startOrUndo starts c, and deletes it if it cannot start, so a failed run
// leaves nothing behind.
func startOrUndo(ctx context.Context, c *runtime.Container) error {
	if err := c.Start(ctx); err != nil {
		c.Delete(context.WithoutCancel(ctx), true)
		return err
	}
	return nil
}

// session is a process run in the foreground by run, exec or attach.
type session struct {
	c     *runtime.Container
	exec  string // "" for the container's init
	tty   bool   // the process has a terminal
	stdin bool   // forward the local input, and its end
	// fromStart says the live stream carries the process's output from its
	// first byte (run and exec attach before the process starts), so a
	// stream that gets cut can be finished from the log.
	fromStart bool
	// begin, if not nil, starts the process once attached (run).
	begin func() error
}

// foreground attaches to the process, then runs it as streamProcess does.
func foreground(ctx context.Context, s session) (int, error) {
	stream, err := s.c.Attach(ctx, s.exec)
	if err != nil {
		return 0, err
	}
	return streamProcess(ctx, s, stream)
}

// streamProcess runs the client side of a live process: with a terminal
// the local one goes raw (when input is forwarded) and its size follows
// SIGWINCH; signals are forwarded; input is copied until its end, which
// then reaches the process as end of input; output is copied until the
// process exits. It returns the exit status from the process's record.
//
// The shim cuts a client that falls too far behind rather than slow the
// container. A run or exec then finishes the output from the log, skipping
// what it already showed of each stream (when the log never rotates: a
// rotation could have dropped what it has not shown); an attach, which
// joined at some unknown point, says where the whole output is.
func streamProcess(ctx context.Context, s session, stream *runtime.Stream) (int, error) {
	defer stream.Close()
	if s.tty {
		restore, err := setupTerminal(ctx, s.c, s.exec, s.stdin)
		if err != nil {
			return 0, err
		}
		defer restore()
	}
	stopSignals := forwardSignals(s.c, s.exec, s.tty, stream)
	defer stopSignals()
	if s.begin != nil {
		if err := s.begin(); err != nil {
			return 0, err
		}
	}
	if s.stdin {
		go forwardStdin(stream)
	}
	out, errOut := &countWriter{w: os.Stdout}, &countWriter{w: os.Stderr}
	exit, err := stream.Copy(out, errOut)
	if err == nil && exit != nil {
		return exit.Status, nil
	}
	// Cut off (fell behind, or the shim went away): the record decides.
	if !s.catchUp(ctx, out.n, errOut.n) {
		fmt.Fprintf(os.Stderr, "\r\ntether: the live output was cut (this client fell behind, or the shim went away or was upgraded); the whole output is in the log: %s\r\n", logsCommand(s.c, s.exec))
	}
	exit, err = s.c.WaitExec(ctx, s.exec)
	if err != nil {
		return 0, err
	}
	return exit.Status, nil
}

// catchUp outputs the rest of the process's output from its log, skipping
// the bytes of each stream shown already, until the process has exited.
// It reports false if it could not.
func (s session) catchUp(ctx context.Context, shownOut, shownErr int64) bool {
	rec, err := s.c.Record()
	if !s.fromStart || err != nil || rec.LogMaxSize > 0 {
		return false
	}
	log, err := s.c.Log(s.exec)
	if err != nil {
		return false
	}
	err = crilog.Follow(ctx, log.Path, crilog.ReadOptions{Tail: -1},
		&skipWriter{w: os.Stdout, skip: shownOut}, &skipWriter{w: os.Stderr, skip: shownErr}, log.Done)
	return err == nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// skipWriter drops the first skip bytes written to it.
type skipWriter struct {
	w    io.Writer
	skip int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	drop := min(s.skip, int64(n))
	s.skip -= drop
	if _, err := s.w.Write(p[drop:]); err != nil {
		return 0, err
	}
	return n, nil
}

// logsCommand is the command that shows a process's whole output.
func logsCommand(c *runtime.Container, exec string) string {
	if exec == "" {
		return "tether logs " + c.ID()
	}
	return "tether logs --exec-id " + exec + " " + c.ID()
}

// forwardStdin copies the local input to the process; its end becomes the
// process's end of input.
func forwardStdin(stream *runtime.Stream) {
	if _, err := io.Copy(stream, os.Stdin); err != nil {
		return // the stream is gone: nothing to close
	}
	stream.CloseStdin()
}

// forwardSignals passes the signals a user sends to the foreground command
// on to the process. With a terminal, SIGWINCH resizes it instead.
func forwardSignals(c *runtime.Container, exec string, tty bool, stream *runtime.Stream) func() {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				if s == syscall.SIGWINCH {
					if ws, ok := localSize(); tty && ok {
						stream.Resize(ws.Width, ws.Height)
					}
					continue
				}
				c.KillExec(context.Background(), exec, s.(syscall.Signal), false)
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// setupTerminal gives the process's terminal the local terminal's size
// (a control request answered once done, so a container started next
// starts with it; a failure, such as an exec'd process that has already
// exited, only costs the size) and, when input is forwarded and stdin is a
// terminal, puts the local terminal in raw mode so that every key reaches
// the process. The returned function restores the local terminal.
func setupTerminal(ctx context.Context, c *runtime.Container, exec string, stdin bool) (func(), error) {
	if ws, ok := localSize(); ok {
		if err := c.Resize(ctx, exec, ws.Width, ws.Height); err != nil {
			logrus.WithError(err).Debug("terminal size not set")
		}
	}
	if !stdin {
		return func() {}, nil
	}
	cur, err := console.ConsoleFromFile(os.Stdin)
	if err != nil {
		return func() {}, nil // not a terminal: the process still has its pty
	}
	if err := cur.SetRaw(); err != nil {
		return nil, fmt.Errorf("raw terminal: %w", err)
	}
	return func() { cur.Reset() }, nil
}

// localSize is the size of the local terminal (stdin's, else stdout's).
func localSize() (console.WinSize, bool) {
	for _, f := range []*os.File{os.Stdin, os.Stdout} {
		cur, err := console.ConsoleFromFile(f)
		if err != nil {
			continue
		}
		if ws, err := cur.Size(); err == nil && ws.Width > 0 && ws.Height > 0 {
			return ws, true
		}
	}
	return console.WinSize{}, false
}

func execCmd(g *globals) *cobra.Command {
	var o execFlags
	cmd := &cobra.Command{
		Use:   "exec [flags] ID [--] CMD ARG...",
		Short: "Run a process in a running container",
		Long: "Run a process in a running container, with the container's own user, environment and\n" +
			"working folder unless given here. Without -d, stream its output and exit with its status.",
		Example: "  tether exec c1 ls -l /\n  tether exec -it c1 sh\n  tether exec -d --exec-id e1 c1 -- sleep 100",
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, command, err := splitCommand(cmd, args, true)
			if err != nil {
				return err
			}
			if len(command) == 0 {
				return usageError{error: errNoCommand}
			}
			return cmdExec(cmd.Context(), g, id, command, o)
		},
		ValidArgsFunction: g.completeIDs(withStatus("running")),
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	fs.BoolVarP(&o.detach, "detach", "d", false, "return once the process runs (prints its generated exec ID)")
	fs.BoolVarP(&o.tty, "tty", "t", false, "allocate a terminal")
	fs.BoolVarP(&o.stdin, "interactive", "i", false, "keep stdin open")
	fs.StringVar(&o.execID, "exec-id", "", "name of the process (default: generated)")
	fs.StringVarP(&o.cwd, "workdir", "w", "", "working folder in the container (default: the container's)")
	fs.StringVar(&o.cwd, "cwd", "", "same as --workdir")
	fs.StringArrayVarP(&o.env, "env", "e", nil, "KEY=VALUE to add to the environment (repeatable)")
	fs.StringArrayVar(&o.envFiles, "env-file", nil, "read KEY=VALUE lines from a file (repeatable)")
	fs.StringVarP(&o.user, "user", "u", "", "UID[:GID] (numbers) (default: the container's)")
	return markForwardsSignals(markChildStatus(cmd))
}

// execFlags are exec's options.
type execFlags struct {
	detach, tty, stdin bool
	execID, cwd, user  string
	env, envFiles      []string
}

func cmdExec(ctx context.Context, g *globals, id string, rest []string, o execFlags) error {
	env, err := readEnvFiles(o.envFiles)
	if err != nil {
		return err
	}
	env = append(env, expandEnv(o.env)...)
	var user *specs.User
	if o.user != "" {
		// Names would need the container's /etc/passwd: numbers only.
		u, err := parseUser(o.user, "")
		if err != nil {
			return usageError{error: err}
		}
		user = &u
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	c, err := m.Load(ctx, id)
	if err != nil {
		return err
	}
	spec, err := c.ProcessSpec(rest)
	if err != nil {
		return err
	}
	spec.Env = append(spec.Env, env...)
	if o.cwd != "" {
		spec.Cwd = o.cwd
	}
	if user != nil {
		spec.User = *user
	}
	if ws, ok := localSize(); o.tty && !o.detach && ok {
		// The process starts with the local size (no 0x0 first prompt).
		spec.ConsoleSize = &specs.Box{Height: uint(ws.Height), Width: uint(ws.Width)}
	}
	name := o.execID
	if name == "" {
		name = newExecID()
	}
	opts := runtime.ExecOpts{ID: name, Process: spec, Terminal: o.tty, Stdin: o.stdin, Attach: !o.detach}
	_, stream, err := c.Exec(ctx, opts)
	if err != nil {
		return execHint(ctx, c, err)
	}
	if o.detach {
		if o.execID == "" {
			fmt.Fprintln(g.stdout, name)
		}
		return nil
	}
	status, err := streamProcess(ctx, session{c: c, exec: name, tty: o.tty, stdin: o.stdin, fromStart: true}, stream)
	if err != nil {
		return err
	}
	return exitError{status}
}

func newExecID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "exec-" + hex.EncodeToString(b)
}

func attachCmd(g *globals) *cobra.Command {
	var noStdin bool
	cmd := &cobra.Command{
		Use:   "attach [flags] ID",
		Short: "Stream a container's live output and forward input",
		Long: "Stream a container's live output from now on (what came before is in 'tether logs') and,\n" +
			"when it was created with -i, forward input; the end of the local input closes the\n" +
			"container's. Exits with the container's status.",
		Example: "  tether attach c1\n  tether attach --no-stdin c1",
		Args:    oneID, ValidArgsFunction: g.completeIDs(withStatus("running", "created", "paused")),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdAttach(cmd.Context(), g, args[0], noStdin)
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "only watch: do not forward input (nor its end)")
	return markForwardsSignals(markChildStatus(cmd))
}

// cmdAttach streams a container's live output from now on (what came
// before is in 'tether logs') and, when it was created with -i and
// --no-stdin is not given, forwards input; the end of the local input
// closes the container's. It exits with the container's status.
func cmdAttach(ctx context.Context, g *globals, id string, noStdin bool) error {
	c, err := loadOne(ctx, g, id)
	if err != nil {
		return err
	}
	rec, err := c.Record()
	if err != nil {
		return err
	}
	status, err := foreground(ctx, session{c: c, tty: rec.Terminal, stdin: rec.Stdin && !noStdin})
	if err != nil {
		return err
	}
	return exitError{status}
}

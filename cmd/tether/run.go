package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/console"
	"github.com/tether-run/tether/runtime"
)

func cmdRun(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("run", g)
	cf := addCreateFlags(fs)
	detach := fs.Bool("d", false, "return once the container runs")
	rm := fs.Bool("rm", false, "delete the container after it exits")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos)
	if err != nil {
		return err
	}
	if *detach && *rm {
		return usageError{errors.New("--rm needs a foreground run: without -d, or delete it later with 'tether delete'")}
	}
	opts, err := cf.opts()
	if err != nil {
		return err
	}
	m, err := g.manager()
	if err != nil {
		return err
	}
	c, err := m.Create(ctx, id, *cf.bundle, opts)
	if err != nil {
		return err
	}
	if *detach {
		return startOrUndo(ctx, c)
	}
	status, err := foreground(ctx, c, "", opts.Terminal, opts.Stdin, func() error { return startOrUndo(ctx, c) })
	if *rm && err == nil {
		if derr := c.Delete(context.Background(), false); derr != nil {
			return derr
		}
	}
	if err != nil {
		return err
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

// foreground attaches to a process, runs begin (start it), forwards
// signals, input and window size, copies its output, and returns its exit
// status.
func foreground(ctx context.Context, c *runtime.Container, exec string, tty, stdin bool, begin func() error) (int, error) {
	stream, err := c.Attach(ctx, exec)
	if err != nil {
		return 0, err
	}
	return streamProcess(ctx, c, exec, stream, tty, stdin, begin)
}

func streamProcess(ctx context.Context, c *runtime.Container, exec string, stream *runtime.Stream, tty, stdin bool, begin func() error) (int, error) {
	defer stream.Close()
	if tty {
		restore, err := rawTerminal(stream)
		if err != nil {
			return 0, err
		}
		defer restore()
	}
	stopSignals := forwardSignals(c, exec, tty, stream)
	defer stopSignals()
	if begin != nil {
		if err := begin(); err != nil {
			return 0, err
		}
	}
	if stdin {
		go forwardStdin(stream)
	}
	exit, err := stream.Copy(os.Stdout, os.Stderr)
	if err != nil || exit == nil {
		// Cut off (too slow, or the shim went away): the record decides.
		exit, err = c.WaitExec(ctx, exec)
		if err != nil {
			return 0, err
		}
	}
	return exit.Status, nil
}

func forwardStdin(stream *runtime.Stream) {
	io.Copy(stream, os.Stdin)
	stream.CloseStdin()
}

// forwardSignals passes the signals a user sends to the foreground command
// on to the container. With a terminal, SIGWINCH resizes it instead.
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
					if tty {
						sendSize(stream)
					}
					continue
				}
				c.KillExec(context.Background(), exec, s.(syscall.Signal), false)
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// rawTerminal puts the local terminal in raw mode (if stdin is one) and
// sends its size; the returned function restores it.
func rawTerminal(stream *runtime.Stream) (func(), error) {
	cur, err := console.ConsoleFromFile(os.Stdin)
	if err != nil {
		return func() {}, nil // not a terminal: the container still gets a pty
	}
	if err := cur.SetRaw(); err != nil {
		return nil, fmt.Errorf("raw terminal: %w", err)
	}
	sendSize(stream)
	return func() { cur.Reset() }, nil
}

func sendSize(stream *runtime.Stream) {
	cur, err := console.ConsoleFromFile(os.Stdin)
	if err != nil {
		return
	}
	if ws, err := cur.Size(); err == nil && ws.Width > 0 {
		stream.Resize(ws.Width, ws.Height)
	}
}

func cmdExec(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("exec", g)
	detach := fs.Bool("d", false, "return once the process runs")
	tty := fs.Bool("t", false, "allocate a terminal")
	stdin := fs.Bool("i", false, "keep stdin open")
	execID := fs.String("exec-id", "", "name of the process (default: generated)")
	cwd := fs.String("cwd", "", "working folder in the container")
	var env multiFlag
	fs.Var(&env, "env", "KEY=VALUE to add to the environment (repeatable)")
	pos, rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usageError{errors.New("no command: give it after --")}
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
	if *cwd != "" {
		spec.Cwd = *cwd
	}
	name := *execID
	if name == "" {
		name = newExecID()
	}
	opts := runtime.ExecOpts{ID: name, Process: spec, Terminal: *tty, Stdin: *stdin, Attach: !*detach}
	_, stream, err := c.Exec(ctx, opts)
	if err != nil {
		return err
	}
	if *detach {
		if *execID == "" {
			fmt.Println(name)
		}
		return nil
	}
	status, err := streamProcess(ctx, c, name, stream, *tty, *stdin, nil)
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

type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func cmdAttach(ctx context.Context, g *globals, args []string) error {
	c, err := load(ctx, g, "attach", args, nil)
	if err != nil {
		return err
	}
	rec, err := c.Record()
	if err != nil {
		return err
	}
	status, err := foreground(ctx, c, "", rec.Terminal, rec.Stdin, nil)
	if err != nil {
		return err
	}
	return exitError{status}
}

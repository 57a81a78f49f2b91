package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/console"
	"github.com/tether-run/tether/internal/unixsock"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// consoleTimeout bounds the wait for the runtime to send the pty master.
const consoleTimeout = 10 * time.Second

// withIO prepares a process's stdio, runs fn (the runtime's create or
// exec) with the runtime's ends, and closes the shim's copies of those ends
// afterwards. Without a terminal fn gets pipes; with one it gets the path
// of a console socket, and the pty master it receives becomes the
// process's IO.
//
// src, when not nil, is copied into the process's input once it runs
// (IO.Stdin of a front end). The console socket's path is worked out only
// for a terminal: a long root then gets a private temporary folder, which
// the socket's close removes.
func (s *Shim) withIO(ctx context.Context, pio *procIO, terminal, stdin bool, src io.Reader, files store.Proc,
	fn func(*stdioFiles, string) error) error {
	if !terminal {
		return s.withPipes(pio, stdin || src != nil, src, fn)
	}
	sock, cleanup, err := consolePath(files)
	if err != nil {
		return err
	}
	defer cleanup()
	cs, err := oci.ListenConsole(sock)
	if err != nil {
		return err
	}
	defer cs.Close()
	type result struct {
		c   console.Console
		err error
	}
	got := make(chan result, 1)
	go func() { c, err := cs.Receive(); got <- result{c, err} }()
	// abandon is the way out on failure: a pty master the runtime sent
	// before it failed (exec of a missing command) must not stay open in
	// the shim, and the receiving goroutine must end.
	abandon := func() {
		cs.Close()
		go func() {
			if r := <-got; r.c != nil {
				r.c.Close()
			}
		}()
	}
	if err := fn(nil, sock); err != nil {
		abandon()
		return err
	}
	select {
	case r := <-got:
		if r.err != nil {
			return r.err
		}
		rw, err := pollable(r.c)
		if err != nil {
			r.c.Close()
			return err
		}
		pio.setConsole(r.c, rw)
		if src != nil {
			pio.fed = true
			go copyStdin(nopCloser{rw}, src)
		}
		return nil
	case <-time.After(consoleTimeout):
		abandon()
		return errors.New("the runtime sent no terminal on the console socket")
	case <-ctx.Done():
		abandon()
		return ctx.Err()
	}
}

// pollable returns a dup of the pty master c, made non-blocking so that
// Go's poller serves it: all reading and writing of the master goes
// through it, and a read deadline can stop its draining at a chunk
// boundary for an upgrade (see handoff.go). The console c itself (whose
// file stays a plain one: its Fd calls change no flags) serves resizes.
// It is closed on exec.
func pollable(c console.Console) (*os.File, error) {
	dup, err := unix.FcntlInt(c.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("pty master: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("pty master: %w", err)
	}
	return os.NewFile(uintptr(dup), "pty-master"), nil
}

// consoleFromFd takes a pty master fd handed over by the previous image
// of the shim: the console is made while the fd is blocking, then its
// pollable copy.
func consoleFromFd(fd int) (console.Console, *os.File, error) {
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("pty master: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pty-master")
	con, err := console.ConsoleFromFile(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	rw, err := pollable(con)
	if err != nil {
		con.Close()
		return nil, nil, err
	}
	return con, rw, nil
}

// withPipes is withIO without a terminal: pipes, drained into the log.
func (s *Shim) withPipes(pio *procIO, stdin bool, src io.Reader, fn func(*stdioFiles, string) error) error {
	files, err := pio.newPipes(stdin)
	if err != nil {
		return fmt.Errorf("create pipes: %w", err)
	}
	err = fn(files, "")
	files.close()
	if err != nil {
		pio.closeStdin()
		return err
	}
	if src != nil {
		pio.mu.Lock()
		pio.fed = true
		w := pio.stdin
		pio.stdin = nil // the copy owns it now and closes it at the end
		pio.mu.Unlock()
		// A process that exited before the runtime returned (or whose
		// input was closed meanwhile) has no stdin left to copy into.
		if w != nil {
			go copyStdin(w, src)
		}
	}
	return nil
}

// nopCloser keeps the pty master open when a stdin source ends: closing
// it would hang the process up.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// consolePath is where a process's console socket goes: in the folder,
// or, for a path too long for a socket address, in a private temporary
// folder, which cleanup removes.
func consolePath(files store.Proc) (path string, cleanup func(), err error) {
	p := files.ConsoleSocket()
	if len(p) <= unixsock.MaxPath {
		return p, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "tcs")
	if err != nil {
		return "", nil, fmt.Errorf("console socket folder: %w", err)
	}
	return filepath.Join(tmp, "c.sock"), func() { os.RemoveAll(tmp) }, nil
}

func ociIO(io *stdioFiles) oci.IO {
	if io == nil {
		return oci.IO{}
	}
	return oci.IO{Stdin: io.in, Stdout: io.out, Stderr: io.err}
}

func setCreateIO(o *oci.CreateOpts, io *stdioFiles, consoleSocket string) {
	o.IO, o.ConsoleSocket = ociIO(io), consoleSocket
}

func setExecIO(o *oci.ExecOpts, io *stdioFiles, consoleSocket string) {
	o.IO, o.ConsoleSocket = ociIO(io), consoleSocket
}

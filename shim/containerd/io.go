package containerd

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// stdio is where containerd wants a process's input and output: FIFO
// paths it made, or for output a "binary://" or "file://" URI (CRI and
// ctr's --log-uri).
type stdio struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// sinks are the open outputs of one process. Writes to a FIFO whose
// reader has gone (containerd restarting) fail with EPIPE; the shim keeps
// a read end of each output FIFO open itself, as containerd's own shim
// does, so they block instead and resume when containerd reopens it.
type sinks struct {
	stdout, stderr io.Writer
	closers        []io.Closer
}

func (s *sinks) Close() {
	for _, c := range s.closers {
		c.Close()
	}
	s.closers = nil
}

// openSinks opens the outputs named in io. An empty path discards that
// stream. ns and id are passed to a logging binary.
func openSinks(ctx context.Context, in stdio, ns, id string) (*sinks, error) {
	s := &sinks{stdout: io.Discard, stderr: io.Discard}
	if u, ok := logURI(in.Stdout); ok {
		if err := s.openURI(ctx, u, ns, id); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	var err error
	if s.stdout, err = s.openFifo(in.Stdout); err != nil {
		s.Close()
		return nil, err
	}
	if in.Terminal {
		return s, nil // a terminal has one output
	}
	if in.Stderr == in.Stdout && in.Stderr != "" {
		s.stderr = s.stdout
		return s, nil
	}
	if s.stderr, err = s.openFifo(in.Stderr); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// logURI parses an output that is a URI rather than a FIFO path.
func logURI(p string) (*url.URL, bool) {
	u, err := url.Parse(p)
	if err != nil || (u.Scheme != "binary" && u.Scheme != "file") {
		return nil, false
	}
	return u, true
}

// openFifo opens an output FIFO for writing, holding a read end too (see
// sinks). An empty path discards.
func (s *sinks) openFifo(path string) (io.Writer, error) {
	if path == "" {
		return io.Discard, nil
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open output fifo %s: %w", path, err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open output fifo %s: %w", path, err)
	}
	s.closers = append(s.closers, w, r)
	return w, nil
}

func (s *sinks) openURI(ctx context.Context, u *url.URL, ns, id string) error {
	switch u.Scheme {
	case "file":
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return fmt.Errorf("log uri %s: %w", u, err)
		}
		f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o640)
		if err != nil {
			return fmt.Errorf("log uri %s: %w", u, err)
		}
		s.stdout, s.stderr = f, f
		s.closers = append(s.closers, f)
		return nil
	case "binary":
		return s.startLogger(ctx, u, ns, id)
	}
	return fmt.Errorf("log uri %s: unsupported scheme %q (use binary:// or file://)", u, u.Scheme)
}

// startLogger runs a logging binary as containerd's shims do: it gets the
// read ends of the stdout and stderr pipes as fds 3 and 4 and a pipe on
// fd 5 that it closes once it is ready; CONTAINER_ID and
// CONTAINER_NAMESPACE are in its environment. The shim's reaper reaps
// it like any other child when it exits.
func (s *sinks) startLogger(ctx context.Context, u *url.URL, ns, id string) error {
	args := []string{}
	for k, vs := range u.Query() {
		args = append(args, k)
		if len(vs) > 0 && vs[0] != "" {
			args = append(args, vs[0])
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	waitR, waitW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
		return err
	}
	cmd := exec.Command(u.Path, args...)
	cmd.ExtraFiles = []*os.File{outR, errR, waitW}
	cmd.Env = append(os.Environ(), "CONTAINER_ID="+id, "CONTAINER_NAMESPACE="+ns)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	outR.Close()
	errR.Close()
	waitW.Close()
	if err != nil {
		waitR.Close()
		outW.Close()
		errW.Close()
		return fmt.Errorf("start logging binary %s: %w", u.Path, err)
	}
	cmd.Process.Release() // reaped by the shim's reaper, never by cmd.Wait
	ready := make(chan struct{})
	go func() {
		io.Copy(io.Discard, waitR) // EOF once it closed fd 5 (or died)
		waitR.Close()
		close(ready)
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		outW.Close()
		errW.Close()
		return fmt.Errorf("logging binary %s did not get ready: %w", u.Path, ctx.Err())
	}
	s.stdout, s.stderr = outW, errW
	s.closers = append(s.closers, outW, errW)
	return nil
}

// openFifoReader opens a FIFO for reading, non-blocking: the open does
// not wait for a writer, and reads park a goroutine in Go's poller, not a
// thread. Before a writer has come, a read returns a false EOF: see
// waitWriter.
func openFifoReader(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open stdin fifo %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// waitWriter waits until f, a FIFO opened by openFifoReader, has something
// to read: data, or the end of a writer that came and went. A FIFO with no
// writer since it was opened is neither readable nor hung up (the kernel
// reports POLLHUP only once a writer has been and gone), so the wait lasts
// until containerd opens its end and writes or closes it, or until f is
// closed (an error).
func waitWriter(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	polled := false
	return rc.Read(func(uintptr) bool {
		done := polled // false on the first call: wait for readiness first
		polled = true
		return done
	})
}

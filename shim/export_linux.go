package shim

import (
	"os"

	"github.com/containerd/console"
)

// This file exposes pieces of the shim core to other front ends (podman's
// tether-conmon) that drive one container without Tether's control socket.
// Each is a thin wrapper over what the shim itself uses.

// ConsoleSocket receives the pty master an OCI runtime sends over
// --console-socket (SCM_RIGHTS).
type ConsoleSocket struct{ c *consoleSocket }

// ListenConsole binds a console socket at path (mode 0600), replacing a
// stale file there. path must be shorter than 108 bytes.
func ListenConsole(path string) (*ConsoleSocket, error) {
	c, err := listenConsole(path)
	if err != nil {
		return nil, err
	}
	return &ConsoleSocket{c: c}, nil
}

// Receive accepts the runtime's connection and returns the pty master it
// carries, close-on-exec. It blocks until the runtime connects or the
// socket is closed.
func (c *ConsoleSocket) Receive() (console.Console, error) { return c.c.receive() }

// Close stops listening and removes the socket file; it may be called again.
func (c *ConsoleSocket) Close() { c.c.close() }

// ExitWatcher learns the exit status of processes that are not children of
// the caller, from the kernel's process events connector (root and
// CONFIG_PROC_EVENTS needed): what an adopting monitor uses in place of
// wait4.
type ExitWatcher struct{ l *exitListener }

// WatchExits subscribes to the connector. It fails without CAP_NET_ADMIN
// or on a kernel without process events.
func WatchExits() (*ExitWatcher, error) {
	l, err := listenExits()
	if err != nil {
		return nil, err
	}
	return &ExitWatcher{l: l}, nil
}

// Watch starts keeping the exit of thread group pid. Call it before
// checking that the process is alive, so its exit cannot be missed.
func (w *ExitWatcher) Watch(pid int) { w.l.watchPid(pid) }

// StatusOf returns the exit status (code, or 128+signal) of pid, which the
// caller knows has ended (a pidfd said so); it waits a bounded time for
// the kernel's event and fails when none came.
func (w *ExitWatcher) StatusOf(pid int) (int, error) { return w.l.statusOf(pid) }

// Close stops listening.
func (w *ExitWatcher) Close() { w.l.close() }

// ReopenOutput opens new read ends of the pipes that are pid's stdout and
// stderr (nil for a stream that is not a pipe; stderr nil too when it is
// the same pipe as stdout). Files are non-blocking and close-on-exec.
func ReopenOutput(pid int) (stdout, stderr *os.File) { return reopenOutput(pid) }

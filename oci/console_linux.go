package oci

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// consoleTimeout bounds the wait for the runtime's message once it has
// connected to a console socket.
const consoleTimeout = 10 * time.Second

// ConsoleSocket receives the pty master that the runtime sends over
// --console-socket (SCM_RIGHTS) when a process has a terminal. Make it
// with ListenConsole.
type ConsoleSocket struct {
	path   string
	ln     *net.UnixListener
	closed sync.Once
}

// ListenConsole binds a console socket at path (mode 0600), replacing a
// stale file there. path must be shorter than 108 bytes.
func ListenConsole(path string) (*ConsoleSocket, error) {
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, err
	}
	return &ConsoleSocket{path: path, ln: ln}, nil
}

// Path is where the socket is bound (CreateOpts.ConsoleSocket).
func (c *ConsoleSocket) Path() string { return c.path }

// Close stops listening and removes the socket file; it may be called
// again. A Receive blocked in accept returns an error.
func (c *ConsoleSocket) Close() {
	c.closed.Do(func() {
		c.ln.Close()
		os.Remove(c.path)
	})
}

// Receive accepts the runtime's connection and returns the pty master it
// carries, close-on-exec. It blocks until the runtime connects or the
// socket is closed.
func (c *ConsoleSocket) Receive() (console.Console, error) {
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(consoleTimeout))
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("receive pty master: no control message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, errors.New("receive pty master: expected one fd")
	}
	unix.CloseOnExec(fds[0])
	f := os.NewFile(uintptr(fds[0]), "pty-master")
	con, err := console.ConsoleFromFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return con, nil
}

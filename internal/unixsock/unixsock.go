// Package unixsock binds and dials filesystem unix sockets whose path may
// be longer than the 108 bytes of a socket address, and reads a peer's
// credentials. The shim's control server, the manager's client and the
// manager's adoption probe share it.
package unixsock

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// MaxPath is the room for a socket path in sockaddr_un, less the NUL.
const MaxPath = 107

// ShortPath calls fn with a path naming the same file as path but short
// enough for a socket address: for a long path it goes through an O_PATH
// handle of the folder, /proc/self/fd/N/name, valid while fn runs.
func ShortPath(path string, fn func(string) error) error {
	if len(path) <= MaxPath {
		return fn(path)
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Dir(path), err)
	}
	defer unix.Close(fd)
	return fn("/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path))
}

// Listen binds a socket at path (any length). The caller sets its mode.
func Listen(path string) (*net.UnixListener, error) {
	var ln *net.UnixListener
	err := ShortPath(path, func(p string) error {
		var err error
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		return err
	})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// Dial connects to the socket at path (any length) within ctx.
func Dial(ctx context.Context, path string) (*net.UnixConn, error) {
	var conn net.Conn
	err := ShortPath(path, func(p string) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "unix", p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return conn.(*net.UnixConn), nil
}

// PeerCred returns the credentials of conn's peer (SO_PEERCRED: the
// process that connected, or that bound the socket for a dialer).
func PeerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	return cred, nil
}

package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// maxSunPath is the room for a socket path in sockaddr_un, less the NUL.
const maxSunPath = 107

// withShortPath calls fn with a path naming the same file as path but short
// enough for a unix socket address: for a long path it goes through an
// O_PATH handle of the folder, /proc/self/fd/N/name.
func withShortPath(path string, fn func(string) error) error {
	if len(path) <= maxSunPath {
		return fn(path)
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Dir(path), err)
	}
	defer unix.Close(fd)
	return fn("/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path))
}

// Listen binds the control socket of the container folder dir with mode
// 0600 (the folder itself is 0700), replacing a stale socket file left by
// a dead shim. A socket that still accepts connections belongs to a live
// shim and is never taken over: that gives an error wrapping ErrExists.
// A path too long for a socket address is bound through /proc/self/fd.
func Listen(dir string) (*net.UnixListener, error) {
	path := filepath.Join(dir, SocketFile)
	if err := removeStale(path); err != nil {
		return nil, err
	}
	var ln *net.UnixListener
	err := withShortPath(path, func(p string) error {
		var err error
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// staleCheckTimeout bounds the probe of an existing socket file.
const staleCheckTimeout = time.Second

// removeStale removes the socket file at path unless a live shim serves it.
func removeStale(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), staleCheckTimeout)
	defer cancel()
	if conn, err := dialSocket(ctx, path); err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: %w: a live shim serves it", path, ErrExists)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// dialSocket connects to the control socket at path.
func dialSocket(ctx context.Context, path string) (*net.UnixConn, error) {
	var conn net.Conn
	err := withShortPath(path, func(p string) error {
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

// peerAllowed reports whether the peer of conn is root or our own user.
func peerAllowed(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
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
		return fmt.Errorf("peer credentials: %w", err)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer uid %d (pid %d) is not allowed", cred.Uid, cred.Pid)
	}
	return nil
}

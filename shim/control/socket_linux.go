package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/internal/unixsock"
	"github.com/tether-run/tether/store"
	"golang.org/x/sys/unix"
)

// Listen binds the control socket of folder st with mode 0600 (the folder
// itself is 0700), replacing a stale socket file left by a dead shim. A
// socket that still accepts connections belongs to a live shim and is
// never taken over: that gives an error wrapping errdefs.ErrExists. A path
// too long for a socket address is bound through /proc/self/fd.
func Listen(st *store.Folder) (*net.UnixListener, error) {
	path := st.SocketPath()
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := unixsock.Listen(path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
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
	if conn, err := unixsock.Dial(ctx, path); err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: %w: a live shim serves it", path, errdefs.ErrExists)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// peerAllowed reports whether the peer of conn is root or our own user.
func peerAllowed(conn *net.UnixConn) error {
	cred, err := unixsock.PeerCred(conn)
	if err != nil {
		return err
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer uid %d (pid %d) is not allowed", cred.Uid, cred.Pid)
	}
	return nil
}

// reopenShimLog points the shim's stdout and stderr (where it logs) at a
// new shim log in the restored folder.
func reopenShimLog(st *store.Folder) {
	f, err := os.OpenFile(st.ShimLogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode().IsRegular() {
		unix.Dup3(int(f.Fd()), 1, 0)
		unix.Dup3(int(f.Fd()), 2, 0)
	}
}

package testutil

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/tether-run/tether/internal/unixsock"
)

// DialUnix connects to the unix socket at path, however long the path (a
// test root may be past the 108 bytes of a socket address).
func DialUnix(path string) (net.Conn, error) {
	return unixsock.Dial(context.Background(), path)
}

// ListenUnix listens on a new unix socket at path, however long the path;
// closing the listener removes the socket file, as net.Listen's does.
func ListenUnix(path string) (net.Listener, error) {
	ln, err := unixsock.Listen(path)
	if err != nil {
		return nil, err
	}
	return &unlinkListener{ln, path}, nil
}

// unlinkListener removes its socket file by its real path on Close.
type unlinkListener struct {
	*net.UnixListener
	path string
}

func (l *unlinkListener) Close() error {
	err := l.UnixListener.Close()
	if rerr := os.Remove(l.path); err == nil && rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	return err
}

package conmon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// Stream prefixes of conmon's attach protocol: every packet to a client
// starts with one of these bytes, followed by at most bufSize bytes.
const (
	attachStdin  = 1
	attachStdout = 2
	attachStderr = 3
)

// bufSize is conmon's STDIO_BUF_SIZE: podman reads packets of bufSize+1.
const bufSize = 8192

// attachWriteTimeout drops a client that takes no output for this long, so
// one stuck client cannot stall the container's output (the log is written
// first in any case).
const attachWriteTimeout = 10 * time.Second

// attachServer is the SOCK_SEQPACKET socket podman attaches to. Output
// reaches the clients through send, on the path that drains the output
// (for a container, the core's sink): like conmon, a client that does not
// read holds the output up, for attachWriteTimeout at most, then it is
// dropped; the log is written first in any case.
type attachServer struct {
	ln    *net.UnixListener
	path  string
	link  string // symlink made for a short path (without --full-attach)
	stdin input

	mu    sync.Mutex
	conns map[*net.UnixConn]bool
	done  bool
}

// input is where a client's data goes: the container's stdin.
type input interface {
	write(p []byte)
	// clientDone: the client shut its sending side.
	clientDone()
}

// attachPath is where podman looks: <bundle>/attach with --full-attach,
// else <socket-dir>/<cuuid>/attach where <socket-dir>/<cuuid> is a
// symlink to the bundle (conmon keeps the path short that way).
func attachPath(o *Options) (path, link string) {
	if o.FullAttach || o.CUUID == "" {
		return filepath.Join(o.Bundle, "attach"), ""
	}
	link = filepath.Join(o.SocketDirPath, o.CUUID)
	return filepath.Join(link, "attach"), link
}

// listenAttach binds the attach socket; the caller starts accept. Paths
// over 107 bytes are bound through /proc/self/fd/N of the folder, as
// conmon does.
func listenAttach(o *Options, stdin input) (*attachServer, error) {
	path, link := attachPath(o)
	if link != "" {
		os.MkdirAll(o.SocketDirPath, 0o755)
		os.Remove(link)
		if err := os.Symlink(o.Bundle, link); err != nil {
			return nil, fmt.Errorf("attach socket symlink: %w", err)
		}
	}
	os.Remove(path)
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("attach socket folder: %w", err)
	}
	defer dir.Close()
	bindAt := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + filepath.Base(path)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: bindAt, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("attach socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	os.Chmod(path, 0o700)
	a := &attachServer{ln: ln, path: path, link: link, stdin: stdin, conns: map[*net.UnixConn]bool{}}
	return a, nil
}

func (a *attachServer) accept() {
	for {
		c, err := a.ln.AcceptUnix()
		if err != nil {
			return
		}
		a.mu.Lock()
		if a.done {
			a.mu.Unlock()
			c.Close()
			return
		}
		a.conns[c] = true
		a.mu.Unlock()
		go a.readStdin(c)
	}
}

// acceptQueued takes the connections already queued on the listener,
// before output goes out: podman connects before it starts the container,
// so its connection is in the backlog before the first byte is written,
// but the accept goroutine may not have run yet (one P, a busy machine),
// and output sent meanwhile would miss that client (a `podman run` whose
// output is missing). a.mu is held; the accept goroutine, parked in the
// poller, just finds fewer connections.
func (a *attachServer) acceptQueued() {
	if a.done {
		return
	}
	rc, err := a.ln.SyscallConn()
	if err != nil {
		return
	}
	for {
		nfd := -1
		rc.Control(func(fd uintptr) {
			nfd, _, _ = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		})
		if nfd < 0 {
			return // EAGAIN: nothing queued
		}
		f := os.NewFile(uintptr(nfd), "attach")
		nc, err := net.FileConn(f)
		f.Close()
		c, ok := nc.(*net.UnixConn)
		if err != nil || !ok {
			if nc != nil {
				nc.Close()
			}
			continue
		}
		a.conns[c] = true
		go a.readStdin(c)
	}
}

// readStdin copies what a client sends into the container's stdin; the
// client's SHUT_WR closes stdin unless --leave-stdin-open.
func (a *attachServer) readStdin(c *net.UnixConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 && a.stdin != nil {
			a.stdin.write(buf[:n])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && a.stdin != nil {
				a.stdin.clientDone()
			}
			return
		}
	}
}

// send writes p (at most bufSize bytes per packet) with the stream
// prefix to every client.
func (a *attachServer) send(prefix byte, p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acceptQueued()
	if len(a.conns) == 0 {
		return
	}
	pkt := make([]byte, 0, bufSize+1)
	for len(p) > 0 {
		n := min(len(p), bufSize)
		pkt = append(append(pkt[:0], prefix), p[:n]...)
		for c := range a.conns {
			c.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
			if _, err := c.Write(pkt); err != nil {
				c.Close()
				delete(a.conns, c)
			}
		}
		p = p[n:]
	}
}

// close ends every client's stream (they read EOF) and removes the socket.
func (a *attachServer) close() {
	a.ln.Close()
	a.mu.Lock()
	a.done = true
	for c := range a.conns {
		c.Close()
	}
	a.conns = nil
	a.mu.Unlock()
	os.Remove(a.path)
	if a.link != "" {
		os.Remove(a.link)
	}
}

// stdinSink is the container's stdin as the monitor holds it: the write
// end of a pipe, or the pty master.
type stdinSink struct {
	mu        sync.Mutex
	w         io.Writer
	closer    io.Closer // nil for a pty (closing the master would hang up)
	leaveOpen bool
	closed    bool
}

func (s *stdinSink) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.w == nil {
		return
	}
	s.w.Write(p)
}

// clientDone is called when an attached client closed its sending side.
func (s *stdinSink) clientDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leaveOpen || s.closed || s.closer == nil {
		return
	}
	s.closed = true
	s.closer.Close()
}

// ctlFifo is <bundle>/ctl: podman writes "TYPE A B\n" lines, 1 for a
// terminal resize (A rows, B columns), 2 to reopen the log files.
type ctlFifo struct {
	f    *os.File
	path string
}

func openCtl(bundle string, resize func(h, w uint16), reopen func()) (*ctlFifo, error) {
	path := filepath.Join(bundle, "ctl")
	os.Remove(path)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("ctl fifo: %w", err)
	}
	// O_RDWR: the monitor is a writer too, so the reader never sees EOF
	// between two podman commands.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("ctl fifo: %w", err)
	}
	c := &ctlFifo{f: f, path: path}
	go c.read(resize, reopen)
	return c, nil
}

func (c *ctlFifo) read(resize func(h, w uint16), reopen func()) {
	sc := bufio.NewScanner(c.f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		typ, _ := strconv.Atoi(f[0])
		a, _ := strconv.Atoi(f[1])
		b, _ := strconv.Atoi(f[2])
		switch typ {
		case 1:
			if resize != nil && a > 0 && b > 0 {
				resize(uint16(a), uint16(b))
			}
		case 2:
			if reopen != nil {
				reopen()
			}
		}
	}
}

func (c *ctlFifo) close() {
	c.f.Close()
	os.Remove(c.path)
}

// resizer returns the ctl handler for a terminal.
func resizer(con console.Console) func(h, w uint16) {
	return func(h, w uint16) { con.Resize(console.WinSize{Height: h, Width: w}) }
}

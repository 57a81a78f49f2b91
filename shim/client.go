package shim

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Default deadlines of the client. A wedged shim (stopped, or accepting and
// never answering) costs a caller at most these.
const (
	DialTimeout    = 2 * time.Second
	RequestTimeout = 30 * time.Second // start, kill, pause, delete...
	StateTimeout   = 2 * time.Second
)

// Client talks to the shim of one container folder. The zero value is not
// usable; use NewClient. A Client holds no connection between calls.
type Client struct {
	path string
}

// NewClient returns a client for the shim serving the container folder dir.
func NewClient(dir string) *Client {
	return &Client{path: filepath.Join(dir, SocketFile)}
}

// dial connects within DialTimeout (or ctx's deadline if sooner). A shim
// that is gone gives an error satisfying errors.Is(err, ErrUnresponsive).
func (c *Client) dial(ctx context.Context) (*net.UnixConn, error) {
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	conn, err := dialSocket(dctx, c.path)
	if err != nil {
		return nil, fmt.Errorf("dial shim: %w: %v", ErrUnresponsive, err)
	}
	return conn, nil
}

// roundTrip sends req and reads the response. timeout 0 waits for as long
// as ctx allows (wait, attach). The connection is returned open for
// streaming operations.
func (c *Client) roundTrip(ctx context.Context, req *Request, timeout time.Duration) (*Response, *net.UnixConn, *bufio.Reader, error) {
	req.Version = SchemaVersion
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if timeout > 0 {
		conn.SetDeadline(time.Now().Add(timeout))
	}
	r := bufio.NewReader(conn)
	var resp Response
	err = WriteMessage(conn, req)
	if err == nil {
		err = ReadMessage(r, &resp)
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		return nil, nil, nil, fmt.Errorf("%s: %w: %v", req.Op, ErrUnresponsive, err)
	}
	conn.SetDeadline(time.Time{})
	if err := resp.err(); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return &resp, conn, r, nil
}

func (resp *Response) err() error {
	if resp.Version != SchemaVersion {
		return fmt.Errorf("shim answered with protocol version %d: %w", resp.Version, ErrVersion)
	}
	if resp.Error == "" {
		return nil
	}
	if sentinel := ErrorOfCode(resp.Code); sentinel != nil && !errors.Is(errors.New(resp.Error), sentinel) {
		return &RemoteError{Msg: resp.Error, Err: sentinel}
	}
	return &RemoteError{Msg: resp.Error}
}

// RemoteError is an error reported by the shim. Err is the sentinel its
// code maps to (nil if none), reachable through errors.Is.
type RemoteError struct {
	Msg string
	Err error
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.Err }

func (c *Client) call(ctx context.Context, req *Request, timeout time.Duration) (*Response, error) {
	resp, conn, _, err := c.roundTrip(ctx, req, timeout)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return resp, nil
}

// State asks for the container's state.
func (c *Client) State(ctx context.Context) (*State, error) {
	resp, err := c.call(ctx, &Request{Op: OpState}, StateTimeout)
	if err != nil {
		return nil, err
	}
	if resp.State == nil {
		return nil, fmt.Errorf("state: %w: empty answer", ErrUnresponsive)
	}
	return resp.State, nil
}

// Start starts the container's init.
func (c *Client) Start(ctx context.Context) error {
	_, err := c.call(ctx, &Request{Op: OpStart}, RequestTimeout)
	return err
}

// Kill signals init (all of the container's processes with all), or the
// exec'd process named exec.
func (c *Client) Kill(ctx context.Context, exec string, sig syscall.Signal, all bool) error {
	_, err := c.call(ctx, &Request{Op: OpKill, Exec: exec, Signal: int(sig), All: all}, RequestTimeout)
	return err
}

// Pause or resume the container.
func (c *Client) Pause(ctx context.Context, pause bool) error {
	op := OpResume
	if pause {
		op = OpPause
	}
	_, err := c.call(ctx, &Request{Op: op}, RequestTimeout)
	return err
}

// Delete removes the container; the shim exits afterwards.
func (c *Client) Delete(ctx context.Context, force bool) error {
	_, err := c.call(ctx, &Request{Op: OpDelete, Force: force}, RequestTimeout)
	return err
}

// CloseStdin ends the input of init or of the exec'd process exec.
func (c *Client) CloseStdin(ctx context.Context, exec string) error {
	_, err := c.call(ctx, &Request{Op: OpCloseStdin, Exec: exec}, RequestTimeout)
	return err
}

// Resize sets the terminal size of init or of an exec'd process.
func (c *Client) Resize(ctx context.Context, exec string, width, height uint16) error {
	_, err := c.call(ctx, &Request{Op: OpResize, Exec: exec, Width: width, Height: height}, RequestTimeout)
	return err
}

// Wait blocks until the process has exited and returns its exit record.
// Only ctx bounds it.
func (c *Client) Wait(ctx context.Context, exec string) (*ExitRecord, error) {
	resp, err := c.call(ctx, &Request{Op: OpWait, Exec: exec}, 0)
	if err != nil {
		return nil, err
	}
	if resp.Exit == nil {
		return nil, fmt.Errorf("wait: %w: no exit in answer", ErrUnresponsive)
	}
	return resp.Exit, nil
}

// Attach opens a live stream of the output of init or of an exec'd
// process, and a way to send it input.
func (c *Client) Attach(ctx context.Context, exec string) (*Stream, error) {
	_, conn, r, err := c.roundTrip(ctx, &Request{Op: OpAttach, Exec: exec}, RequestTimeout)
	if err != nil {
		return nil, err
	}
	return &Stream{conn: conn, r: r}, nil
}

// ExecOpts describe an exec'd process.
type ExecOpts struct {
	ID       string
	Process  specs.Process
	Terminal bool
	Stdin    bool
	// Attach keeps the connection as a Stream of the process's IO.
	Attach bool
}

// Exec starts a process in the container. The Stream is nil unless
// opts.Attach.
func (c *Client) Exec(ctx context.Context, opts ExecOpts) (*State, *Stream, error) {
	req := &Request{Op: OpExec, Exec: opts.ID, Process: &opts.Process,
		Terminal: opts.Terminal, Stdin: opts.Stdin, Attach: opts.Attach}
	resp, conn, r, err := c.roundTrip(ctx, req, RequestTimeout+RequestTimeout)
	if err != nil {
		return nil, nil, err
	}
	if !opts.Attach {
		conn.Close()
		return resp.State, nil, nil
	}
	return resp.State, &Stream{conn: conn, r: r}, nil
}

// Stream is a live connection to a process's IO. Close it when done.
type Stream struct {
	conn *net.UnixConn
	r    *bufio.Reader
	wmu  sync.Mutex // one frame at a time: Write, CloseStdin and Resize may race
}

// writeFrame sends one whole frame, never interleaved with another.
func (s *Stream) writeFrame(kind byte, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return WriteFrame(s.conn, kind, p)
}

// Copy writes the process's output to stdout and stderr until it exits,
// and returns its exit record. A nil record with a nil error means the
// stream was cut (the follower fell too far behind or the shim went away).
func (s *Stream) Copy(stdout, stderr io.Writer) (*ExitRecord, error) {
	buf := make([]byte, 64*1024)
	for {
		kind, data, err := ReadFrame(s.r, buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
				errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
				return nil, nil
			}
			return nil, err
		}
		switch kind {
		case FrameStdout:
			_, err = stdout.Write(data)
		case FrameStderr:
			_, err = stderr.Write(data)
		case FrameExit:
			var e ExitRecord
			if err := json.Unmarshal(data, &e); err != nil {
				return nil, fmt.Errorf("exit frame: %w", err)
			}
			return &e, nil
		}
		if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
			return nil, err
		}
	}
}

// Write sends input to the process. It returns len(p) once all of p has
// been sent, or the number of bytes sent before the error.
func (s *Stream) Write(p []byte) (int, error) {
	sent := 0
	for sent < len(p) {
		n := min(len(p)-sent, MaxFrameSize)
		if err := s.writeFrame(FrameStdin, p[sent:sent+n]); err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// CloseStdin sends end of input.
func (s *Stream) CloseStdin() error { return s.writeFrame(FrameCloseStdin, nil) }

// Resize sends a new terminal size.
func (s *Stream) Resize(width, height uint16) error {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], width)
	binary.BigEndian.PutUint16(b[2:], height)
	return s.writeFrame(FrameResize, b[:])
}

// Close ends the stream; the process goes on.
func (s *Stream) Close() error { return s.conn.Close() }

// Stats asks the shim for its own resource use: goroutines, open fds and
// control connections (this one included). It is answered even while the
// container is being created.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	resp, err := c.call(ctx, &Request{Op: OpStats}, StateTimeout)
	if err != nil {
		return nil, err
	}
	if resp.Stats == nil {
		return nil, fmt.Errorf("stats: %w: empty answer", ErrUnresponsive)
	}
	return resp.Stats, nil
}

// Package client is the manager's side of the shimapi protocol: it dials a
// container's control socket, sends one request per connection within a
// deadline derived from the container's record, and turns replies back
// into shimapi values and sentinel errors. Streams (attach, exec with
// attach) stay open as a Stream. It holds no connection between calls.
//
// Versions: a request goes out in the newest protocol version this build
// speaks; a shim that speaks an older one refuses it saying its version
// (shimapi.Response.Downgrade), and the request is sent again once in
// that version, which the client then keeps.
package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/cgroups"
	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/internal/unixsock"
	"github.com/tether-run/tether/shimapi"
)

// DefaultRuntimeTimeout is the OCI runtime's call bound when a record
// gives none (oci.DefaultTimeout).
const DefaultRuntimeTimeout = 60 * time.Second

// Deadlines of a client. A wedged shim (stopped, or accepting and never
// answering) costs a caller at most these.
type Deadlines struct {
	// Dial bounds connecting.
	Dial time.Duration
	// State bounds state and stats, which never call the runtime.
	State time.Duration
	// Single bounds requests that make one runtime call (start, pause,
	// resume, resize, close stdin).
	Single time.Duration
	// Double bounds requests that may make two runtime calls and wait
	// for a process (kill of a paused container, delete, exec with its
	// console).
	Double time.Duration
}

// margin covers what a shim does around its runtime calls.
const margin = 15 * time.Second

// DeadlinesFor derives a client's deadlines from the runtime timeout in
// the container's record (0: DefaultRuntimeTimeout), so that the client
// never gives up on a request the shim is still rightly working on: the
// shim bounds each runtime call by that timeout, the client waits for as
// many calls as the request may make, plus a margin.
func DeadlinesFor(runtimeTimeout time.Duration) Deadlines {
	if runtimeTimeout <= 0 {
		runtimeTimeout = DefaultRuntimeTimeout
	}
	return Deadlines{Dial: 2 * time.Second, State: 2 * time.Second,
		Single: runtimeTimeout + margin, Double: 2*runtimeTimeout + margin}
}

// Client talks to the shim behind one control socket. Make it with New.
type Client struct {
	path string
	d    Deadlines
	mu   sync.Mutex
	v    int // protocol version to send
}

// New returns a client for the control socket at path.
func New(path string, d Deadlines) *Client {
	return &Client{path: path, d: d, v: shimapi.Version}
}

func (c *Client) version() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.v
}

// dial connects within the dial deadline (or ctx's if sooner). A shim that
// is gone gives an error satisfying errors.Is(err, errdefs.ErrUnresponsive).
func (c *Client) dial(ctx context.Context) (*net.UnixConn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.d.Dial)
	defer cancel()
	conn, err := unixsock.Dial(dctx, c.path)
	if err != nil {
		return nil, fmt.Errorf("dial shim: %w: %v", errdefs.ErrUnresponsive, err)
	}
	return conn, nil
}

// roundTrip sends m and reads the reply, retrying once in an older
// protocol version when the shim asks for it. timeout 0 waits for as long
// as ctx allows (wait, attach). The connection is returned open for
// streaming operations.
func (c *Client) roundTrip(ctx context.Context, m shimapi.Message, timeout time.Duration) (*shimapi.Response, *net.UnixConn, *bufio.Reader, error) {
	v := c.version()
	resp, conn, r, err := c.try(ctx, v, m, timeout)
	if err != nil {
		return nil, nil, nil, err
	}
	if older, ok := resp.Downgrade(v); ok {
		conn.Close()
		c.mu.Lock()
		c.v = older
		c.mu.Unlock()
		v = older
		if resp, conn, r, err = c.try(ctx, v, m, timeout); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := resp.Err(v); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return resp, conn, r, nil
}

// try is one exchange in protocol version v.
func (c *Client) try(ctx context.Context, v int, m shimapi.Message, timeout time.Duration) (*shimapi.Response, *net.UnixConn, *bufio.Reader, error) {
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
	var resp shimapi.Response
	err = shimapi.WriteMessage(conn, shimapi.NewRequest(v, m))
	if err == nil {
		err = shimapi.ReadMessage(r, &resp)
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		return nil, nil, nil, fmt.Errorf("%s: %w: %v", m.Op(), errdefs.ErrUnresponsive, err)
	}
	conn.SetDeadline(time.Time{})
	return &resp, conn, r, nil
}

func (c *Client) call(ctx context.Context, m shimapi.Message, timeout time.Duration) (*shimapi.Response, error) {
	resp, conn, _, err := c.roundTrip(ctx, m, timeout)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return resp, nil
}

// State asks for the container's state.
func (c *Client) State(ctx context.Context) (*shimapi.State, error) {
	resp, err := c.call(ctx, shimapi.StateReq{}, c.d.State)
	if err != nil {
		return nil, err
	}
	if resp.State == nil {
		return nil, fmt.Errorf("state: %w: empty answer", errdefs.ErrUnresponsive)
	}
	return resp.State, nil
}

// Stats asks the shim for its own resource use; answered even while the
// container is being created.
func (c *Client) Stats(ctx context.Context) (*shimapi.Stats, error) {
	resp, err := c.call(ctx, shimapi.StatsReq{}, c.d.State)
	if err != nil {
		return nil, err
	}
	if resp.Stats == nil {
		return nil, fmt.Errorf("stats: %w: empty answer", errdefs.ErrUnresponsive)
	}
	return resp.Stats, nil
}

// Metrics asks for the container's cgroup usage and limits.
func (c *Client) Metrics(ctx context.Context) (*cgroups.Stats, error) {
	resp, err := c.call(ctx, shimapi.MetricsReq{}, c.d.State)
	if err != nil {
		return nil, tooOld(shimapi.OpMetrics, err)
	}
	if resp.Metrics == nil {
		return nil, fmt.Errorf("metrics: %w: empty answer", errdefs.ErrUnresponsive)
	}
	return resp.Metrics, nil
}

// Pids asks for the host pids of the container's processes.
func (c *Client) Pids(ctx context.Context) ([]int, error) {
	resp, err := c.call(ctx, shimapi.PidsReq{}, c.d.Single)
	if err != nil {
		return nil, tooOld(shimapi.OpPids, err)
	}
	return resp.Pids, nil
}

// Update changes the container's limits through the OCI runtime.
func (c *Client) Update(ctx context.Context, res *specs.LinuxResources) error {
	_, err := c.call(ctx, shimapi.UpdateReq{Resources: *res}, c.d.Single)
	return tooOld(shimapi.OpUpdate, err)
}

// tooOld turns the refusal of an operation added to protocol version 1
// after its first release (metrics, update, pids), which shims of that release
// answer with "unknown operation" and CodeInvalid, into an error wrapping
// errdefs.ErrVersion that says why and what to do. It is the one place
// that matches a shim's message text: those shims send nothing better.
func tooOld(op string, err error) error {
	var re *shimapi.RemoteError
	if err == nil || !errors.Is(err, errdefs.ErrInvalid) || !errors.As(err, &re) ||
		!strings.Contains(re.Msg, "unknown operation") {
		return err
	}
	return fmt.Errorf("%w: the container's shim was started by an older tether that has no %s operation: recreate the container to use it (%w)",
		errdefs.ErrVersion, op, err)
}

// Start starts the container's init.
func (c *Client) Start(ctx context.Context) error {
	_, err := c.call(ctx, shimapi.StartReq{}, c.d.Single)
	return err
}

// Kill signals init (all of the container's processes with all), or the
// exec'd process exec.
func (c *Client) Kill(ctx context.Context, exec string, sig syscall.Signal, all bool) error {
	_, err := c.call(ctx, shimapi.KillReq{Exec: exec, Signal: int(sig), All: all}, c.d.Double)
	return err
}

// Pause or resume the container.
func (c *Client) Pause(ctx context.Context, pause bool) error {
	var m shimapi.Message = shimapi.ResumeReq{}
	if pause {
		m = shimapi.PauseReq{}
	}
	_, err := c.call(ctx, m, c.d.Single)
	return err
}

// Delete removes the container; the shim exits afterwards.
func (c *Client) Delete(ctx context.Context, force bool) error {
	_, err := c.call(ctx, shimapi.DeleteReq{Force: force}, c.d.Double)
	return err
}

// stopMargin covers the wait for init after the SIGKILL of a stop.
const stopMargin = 10 * time.Second

// Stop stops the container (sig 0: its stop signal, or SIGTERM; SIGKILL
// after grace) and returns init's exit once it is durable.
func (c *Client) Stop(ctx context.Context, sig syscall.Signal, grace time.Duration) (*shimapi.Exit, error) {
	resp, err := c.call(ctx, shimapi.StopReq{Signal: int(sig), Grace: grace}, grace+stopMargin+c.d.Double)
	if err != nil {
		return nil, err
	}
	if resp.Exit == nil {
		return nil, fmt.Errorf("stop: %w: no exit in answer", errdefs.ErrUnresponsive)
	}
	return resp.Exit, nil
}

// Checkpoint dumps the container with CRIU into imagePath.
func (c *Client) Checkpoint(ctx context.Context, imagePath, workPath string, leaveRunning bool) error {
	_, err := c.call(ctx, shimapi.CheckpointReq{ImagePath: imagePath, WorkPath: workPath,
		LeaveRunning: leaveRunning}, c.d.Single)
	return err
}

// CloseStdin ends the input of init or of the exec'd process exec.
func (c *Client) CloseStdin(ctx context.Context, exec string) error {
	_, err := c.call(ctx, shimapi.CloseStdinReq{Exec: exec}, c.d.Single)
	return err
}

// Resize sets the terminal size of init or of an exec'd process.
func (c *Client) Resize(ctx context.Context, exec string, width, height uint16) error {
	_, err := c.call(ctx, shimapi.ResizeReq{Exec: exec, Width: width, Height: height}, c.d.Single)
	return err
}

// Wait blocks until the process has exited and returns its exit. Only ctx
// bounds it.
func (c *Client) Wait(ctx context.Context, exec string) (*shimapi.Exit, error) {
	resp, err := c.call(ctx, shimapi.WaitReq{Exec: exec}, 0)
	if err != nil {
		return nil, err
	}
	if resp.Exit == nil {
		return nil, fmt.Errorf("wait: %w: no exit in answer", errdefs.ErrUnresponsive)
	}
	return resp.Exit, nil
}

// Attach opens a live stream of the output of init or of an exec'd
// process, and a way to send it input.
func (c *Client) Attach(ctx context.Context, exec string) (*Stream, error) {
	_, conn, r, err := c.roundTrip(ctx, shimapi.AttachReq{Exec: exec}, c.d.Single)
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

// Exec starts a process in the container and returns its pid. The Stream
// is nil unless opts.Attach.
func (c *Client) Exec(ctx context.Context, opts ExecOpts) (int, *Stream, error) {
	m := shimapi.ExecReq{ID: opts.ID, Process: opts.Process, Terminal: opts.Terminal,
		Stdin: opts.Stdin, Attach: opts.Attach}
	resp, conn, r, err := c.roundTrip(ctx, m, c.d.Double)
	if err != nil {
		return 0, nil, err
	}
	pid := 0
	if resp.State != nil {
		pid = resp.State.Pid
	}
	if !opts.Attach {
		conn.Close()
		return pid, nil, nil
	}
	return pid, &Stream{conn: conn, r: r}, nil
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
	return shimapi.WriteFrame(s.conn, kind, p)
}

// Copy writes the process's output to stdout and stderr until it exits,
// and returns its exit. A nil exit with a nil error means the stream was
// cut (the follower fell too far behind or the shim went away).
func (s *Stream) Copy(stdout, stderr io.Writer) (*shimapi.Exit, error) {
	buf := make([]byte, 64*1024)
	for {
		kind, data, err := shimapi.ReadFrame(s.r, buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
				errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
				return nil, nil
			}
			return nil, err
		}
		switch kind {
		case shimapi.FrameStdout:
			_, err = stdout.Write(data)
		case shimapi.FrameStderr:
			_, err = stderr.Write(data)
		case shimapi.FrameExit:
			var e shimapi.Exit
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
		n := min(len(p)-sent, shimapi.MaxFrameSize)
		if err := s.writeFrame(shimapi.FrameStdin, p[sent:sent+n]); err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// CloseStdin sends end of input.
func (s *Stream) CloseStdin() error { return s.writeFrame(shimapi.FrameCloseStdin, nil) }

// Resize sends a new terminal size.
func (s *Stream) Resize(width, height uint16) error {
	return s.writeFrame(shimapi.FrameResize, shimapi.ResizePayload(width, height))
}

// Close ends the stream; the process goes on.
func (s *Stream) Close() error { return s.conn.Close() }

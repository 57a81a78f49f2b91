// Package control is tether's own front end of the shim core: the control
// socket ROOT/ID/shim.sock that the manager (package runtime) talks to
// with the shimapi protocol. It is one adapter over package shim's API,
// like the containerd and podman front ends: it turns requests into core
// calls and core results into replies, and owns only what is the socket's
// (peer checks, connection limits, request deadlines, streams as frames).
//
// Order of use (cmd/tether-shim does this):
//
//	core, _ := shim.New(ctx, shim.Options{Store: folder, OnRestore: srv.Restore, ...})
//	srv := control.New(core, folder, log)
//	srv.Listen()            // before Create/Adopt: state answers "creating"
//	go srv.Serve(ctx)
//	pid, err := core.Create(ctx) // or Adopt; then write the ready message
//	<-srv.Done()            // closed once a delete has been answered
//	core.Close()
package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
)

// Server serves the control socket of one container for a shim core.
type Server struct {
	core  *shim.Shim
	st    *store.Folder
	log   *logrus.Entry
	conns conns
	// serving counts the requests read and not yet fully answered (a
	// stream until its exit frame); the auto-remove waits for them
	// (autoremove.go).
	serving atomic.Int32

	lnMu sync.Mutex // guards ln, replaced when the folder is restored
	ln   *net.UnixListener
	ctx  context.Context

	done     chan struct{}
	doneOnce sync.Once

	q quiesce // an upgrade's pause of the serving (upgrade.go)
}

// New returns a server for core, whose folder is st. log may be nil.
func New(core *shim.Shim, st *store.Folder, log *logrus.Entry) *Server {
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Server{core: core, st: st, log: log, done: make(chan struct{})}
}

// Listen binds the control socket (see Listen).
func (s *Server) Listen() error {
	ln, err := Listen(s.st)
	if err != nil {
		return err
	}
	s.lnMu.Lock()
	s.ln = ln
	s.lnMu.Unlock()
	return nil
}

// Serve accepts connections until ctx is done or Close; each connection
// gets its own goroutine, so no client, however slow, holds up another or
// the reaping of the container, which never waits on a connection. When
// the container's record asks for auto-remove, the server removes the
// container once it has exited (AutoRemove) and closes.
func (s *Server) Serve(ctx context.Context) {
	s.lnMu.Lock()
	ln := s.ln
	s.ctx = ctx
	s.lnMu.Unlock()
	context.AfterFunc(ctx, s.Close)
	if s.core.Record().AutoRemove {
		go s.AutoRemove(ctx)
	}
	s.acceptLoop(ctx, ln)
}

// Done is closed once a delete has been answered (the shim should then
// exit) or Close was called.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops accepting connections and closes Done.
func (s *Server) Close() {
	s.lnMu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.lnMu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
}

// Restore is the core's OnRestore: it binds a new socket in the restored
// folder and serves it (the old one is unreachable and closed), after
// pointing the shim's own log at a new file there.
func (s *Server) Restore(ctx context.Context) error {
	reopenShimLog(s.st)
	ln, err := Listen(s.st)
	if err != nil {
		return err
	}
	s.lnMu.Lock()
	old := s.ln
	s.ln = ln
	sctx := s.ctx
	s.lnMu.Unlock()
	if old != nil {
		old.Close()
	}
	if sctx == nil {
		sctx = ctx
	}
	go s.acceptLoop(sctx, ln)
	return nil
}

func (s *Server) acceptLoop(ctx context.Context, ln *net.UnixListener) {
	s.q.loopStarted()
	defer s.q.loopEnded()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.q.isPaused() {
				return
			}
			s.log.WithError(err).Warn("accept")
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: let fds free up
			continue
		}
		if !s.conns.admit() {
			shimapi.WriteMessage(conn, shimapi.Fail(shimapi.Version, errTooManyConns))
			conn.Close()
			continue
		}
		conn.SetReadDeadline(time.Now().Add(requestTimeout))
		s.conns.waiting(conn)
		s.q.enter()
		go s.handle(ctx, conn)
	}
}

// handle serves one connection: one request, one response, and for the
// streaming operations the frames that follow. A request that is too
// large, malformed, of an unknown protocol version or invalid gets an
// error reply and the connection is closed.
func (s *Server) handle(ctx context.Context, conn *net.UnixConn) {
	defer s.conns.release()
	defer conn.Close()
	leave := sync.OnceFunc(s.q.leave)
	defer leave()
	if err := peerAllowed(conn); err != nil {
		s.conns.read(conn)
		s.log.WithError(err).Warn("refused connection")
		return
	}
	msg, v, r, err := s.readRequest(conn)
	defer s.holdRequest(msg)()
	if err != nil {
		shimapi.WriteMessage(conn, shimapi.Fail(v, err))
		return
	}
	c := &call{s: s, v: v, r: r, conn: conn, leave: leave}
	resp, stream := c.run(ctx, msg)
	if resp.Error != "" {
		s.log.WithFields(logrus.Fields{"op": msg.Op(), "error": resp.Error}).Info("request failed")
	}
	if err := shimapi.WriteMessage(conn, resp); err != nil || stream == nil || resp.Error != "" {
		return
	}
	stream()
}

// readRequest reads and checks the one request of a connection within
// requestTimeout of its accept (the accept loop set the deadline). v is
// the version to answer in: the request's, or this shim's own when the
// request's is not one it speaks.
func (s *Server) readRequest(conn *net.UnixConn) (shimapi.Message, int, *bufio.Reader, error) {
	r := bufio.NewReader(conn)
	var req shimapi.Request
	err := shimapi.ReadMessage(r, &req)
	evicted := s.conns.read(conn)
	if err != nil {
		if evicted {
			return nil, shimapi.Version, nil, fmt.Errorf("%w: no request yet while %d other connections waited to send theirs: connect when ready to send", errdefs.ErrInvalid, maxPending)
		}
		return nil, shimapi.Version, nil, fmt.Errorf("%w: bad request: %v", errdefs.ErrInvalid, err)
	}
	conn.SetReadDeadline(time.Time{})
	v := req.Version
	if v < shimapi.MinVersion || v > shimapi.Version {
		v = shimapi.Version
	}
	msg, err := req.Message()
	if err != nil {
		return nil, v, nil, err
	}
	return msg, v, r, nil
}

// stats reports the shim's own resource use.
func (s *Server) stats() *shimapi.Stats {
	fds := -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents) - 1 // the folder's own fd while it was read
	}
	open, pending := s.conns.count()
	return &shimapi.Stats{Goroutines: goruntime.NumGoroutine(), FDs: fds, Conns: open, Pending: pending}
}

// call is one request being served.
type call struct {
	s    *Server
	v    int // protocol version of the request, and of the answer
	r    *bufio.Reader
	conn *net.UnixConn
	// leave marks the request as no longer busy: its answer is written,
	// or it waits for an exit or streams (an upgrade need not wait for it).
	leave func()
}

func (c *call) ok() *shimapi.Response            { return &shimapi.Response{Version: c.v} }
func (c *call) fail(err error) *shimapi.Response { return shimapi.Fail(c.v, err) }

// run serves one message. A non-nil stream function is run after the
// response was written.
func (c *call) run(ctx context.Context, msg shimapi.Message) (*shimapi.Response, func()) {
	core := c.s.core
	switch m := msg.(type) {
	case shimapi.StatsReq:
		return &shimapi.Response{Version: c.v, Stats: c.s.stats()}, nil
	case shimapi.StateReq:
		return &shimapi.Response{Version: c.v, State: wireState(core.State())}, nil
	case shimapi.MetricsReq:
		st, err := core.Metrics()
		if err != nil {
			return c.fail(creatingHint(err)), nil
		}
		return &shimapi.Response{Version: c.v, Metrics: st}, nil
	case shimapi.PidsReq:
		pids, err := core.Pids(ctx)
		if err != nil {
			return c.fail(creatingHint(err)), nil
		}
		return &shimapi.Response{Version: c.v, Pids: pids}, nil
	case shimapi.ExecReq:
		return c.exec(ctx, m)
	case shimapi.WaitReq:
		return c.wait(ctx, m.Exec), nil
	case shimapi.StopReq:
		return c.stop(ctx, m), nil
	case shimapi.AttachReq:
		fl, err := core.Attach(m.Exec)
		if err != nil {
			return c.fail(creatingHint(err)), nil
		}
		return c.ok(), func() { c.stream(m.Exec, fl) }
	case shimapi.UpgradeReq:
		return c.upgrade(ctx, m), nil // returns only if the upgrade failed
	case shimapi.DeleteReq:
		if err := core.Delete(ctx, m.Force); err != nil {
			return c.fail(creatingHint(err)), nil
		}
		return c.ok(), c.s.Close // the shim stops only after the answer is written
	}
	if err := c.control(ctx, msg); err != nil {
		return c.fail(creatingHint(err)), nil
	}
	return c.ok(), nil
}

// control runs the requests that change a process without streaming.
func (c *call) control(ctx context.Context, msg shimapi.Message) error {
	core := c.s.core
	switch m := msg.(type) {
	case shimapi.StartReq:
		return core.Start(ctx)
	case shimapi.KillReq:
		return core.Kill(ctx, m.Exec, syscall.Signal(m.Signal), m.All)
	case shimapi.ResizeReq:
		return core.Resize(m.Exec, m.Width, m.Height)
	case shimapi.CloseStdinReq:
		return core.CloseStdin(m.Exec)
	case shimapi.PauseReq:
		return core.Pause(ctx)
	case shimapi.ResumeReq:
		return core.Resume(ctx)
	case shimapi.UpdateReq:
		return core.Update(ctx, &m.Resources)
	case shimapi.CheckpointReq:
		return core.Checkpoint(ctx, shim.CheckpointConfig{ImagePath: m.ImagePath,
			WorkPath: m.WorkPath, LeaveRunning: m.LeaveRunning})
	}
	return fmt.Errorf("%w: unknown operation %q", errdefs.ErrInvalid, msg.Op())
}

// creatingHint adds what to do to a refusal made while create runs.
func creatingHint(err error) error {
	if shim.Creating(err) {
		return fmt.Errorf("%w: try again once the container's create has returned", err)
	}
	return err
}

// wait answers once the process has exited and its record is durable, or
// gives up when the client hangs up.
func (c *call) wait(ctx context.Context, exec string) *shimapi.Response {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { c.r.ReadByte(); cancel() }()
	c.leave() // an upgrade ends this connection: the client asks the new binary again
	exit, err := c.s.core.Wait(ctx, exec)
	if err != nil {
		if ctx.Err() != nil {
			return c.fail(errors.New("client went away"))
		}
		return c.fail(creatingHint(err))
	}
	return &shimapi.Response{Version: c.v, Exit: wireExit(exit)}
}

// stop answers once init has exited and its record is durable. A client
// that hangs up ends only the answer: the core finishes the stop.
func (c *call) stop(ctx context.Context, m shimapi.StopReq) *shimapi.Response {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { c.r.ReadByte(); cancel() }()
	exit, err := c.s.core.Stop(ctx, syscall.Signal(m.Signal), m.Grace)
	if err != nil {
		if ctx.Err() != nil {
			return c.fail(errors.New("client went away (the stop goes on)"))
		}
		return c.fail(creatingHint(err))
	}
	return &shimapi.Response{Version: c.v, Exit: wireExit(exit)}
}

// exec starts an exec'd process; with Attach the connection then streams
// its IO.
func (c *call) exec(ctx context.Context, m shimapi.ExecReq) (*shimapi.Response, func()) {
	pid, fl, err := c.s.core.Exec(ctx, shim.ExecConfig{ID: m.ID, Process: m.Process,
		Terminal: m.Terminal, Stdin: m.Stdin, Attach: m.Attach})
	if err != nil {
		return c.fail(creatingHint(err)), nil
	}
	resp := &shimapi.Response{Version: c.v, State: &shimapi.State{ID: m.ID, Status: shimapi.StatusRunning, Pid: pid}}
	if fl == nil {
		return resp, nil
	}
	return resp, func() { c.stream(m.ID, fl) }
}

// stream runs a streaming connection: output frames out, input frames in,
// and a final exit frame once the process's exit record is durable. A
// follower that fell behind is dropped and its connection closed.
func (c *call) stream(exec string, fl *shim.Follower) {
	c.leave() // an upgrade cuts the stream: the client attaches again
	go c.readInput(exec, fl)
	if !deliver(fl, c.conn) {
		return // dropped or gone: no exit frame after missing output
	}
	exit, err := c.s.core.Wait(context.Background(), exec)
	if err != nil {
		return
	}
	b, _ := jsonMarshal(wireExit(exit))
	shimapi.WriteFrame(c.conn, shimapi.FrameExit, b)
}

// readInput forwards the client's frames until it hangs up.
func (c *call) readInput(exec string, fl *shim.Follower) {
	core := c.s.core
	buf := make([]byte, 32*1024)
	for {
		kind, data, err := shimapi.ReadFrame(c.r, buf)
		if err != nil {
			fl.Close()
			return
		}
		switch kind {
		case shimapi.FrameStdin:
			err = core.WriteStdin(exec, data)
		case shimapi.FrameCloseStdin:
			err = core.CloseStdin(exec)
		case shimapi.FrameResize:
			if w, h, ok := shimapi.ParseResize(data); ok {
				err = core.Resize(exec, w, h)
			}
		}
		if err != nil {
			c.s.log.WithError(err).Debug("attach input")
		}
	}
}

// deliver writes fl's output to conn as frames (see shim.Follower.Copy)
// and reports whether the client got all of it.
func deliver(fl *shim.Follower, conn net.Conn) bool {
	return fl.Copy(conn, func(stderr bool, p []byte) error {
		kind := shimapi.FrameStdout
		if stderr {
			kind = shimapi.FrameStderr
		}
		return shimapi.WriteFrame(conn, kind, p)
	})
}

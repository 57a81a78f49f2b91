package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/runtime/oci"
	"golang.org/x/sys/unix"
)

// Limits of the control socket. A peer is root or the shim's own user
// (SO_PEERCRED), but a buggy or stuck one must still not be able to wedge
// the shim: it gets requestTimeout to send its request; once maxPending
// connections are waiting to send one, each new one evicts the oldest idle
// one; and at most maxConns may be open at all (wait and attach hold
// theirs for as long as they like), past which a new connection gets an
// error reply and is closed.
const (
	requestTimeout = 5 * time.Second
	maxPending     = 64
	evictGrace     = 100 * time.Millisecond
	maxConns       = 1024
)

// deleteTimeout bounds the wait for init to die during a forced delete.
const deleteTimeout = 10 * time.Second

// errTooManyConns is the reply past maxConns.
var errTooManyConns = fmt.Errorf("too many connections to this shim (%d): close some and try again", maxConns)

// waiter is a connection whose request has not been read yet.
type waiter struct {
	conn  *net.UnixConn
	since time.Time
}

// conns tracks the open control connections of a shim.
type conns struct {
	mu      sync.Mutex
	open    int
	pending []waiter // accept order: connected, request not read yet
	evicted map[*net.UnixConn]bool
}

// admit counts a new connection, or reports false past maxConns.
func (c *conns) admit() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open >= maxConns {
		return false
	}
	c.open++
	return true
}

func (c *conns) release() {
	c.mu.Lock()
	c.open--
	c.mu.Unlock()
}

// count returns the open connections and those still waiting to send
// their request.
func (c *conns) count() (open, pending int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, len(c.pending)
}

// waiting marks conn as waiting for its request. The accept loop calls it
// in accept order, so pending stays oldest first. Past maxPending one
// waiting connection is evicted so idle clients cannot crowd out live
// ones: the oldest that has waited evictGrace or more with nothing queued
// to read. A younger one may be a client that has yet to write, and one
// whose request sits unread in the socket is a live client whose goroutine
// has not run yet. If none qualifies nobody is evicted; maxConns and
// requestTimeout still bound the crowd.
//
// Eviction expires the read deadline rather than closing the connection:
// a request already read whole survives it (readRequest takes the
// connection off the list before it clears the deadline), and the evicted
// client is told why.
func (c *conns) waiting(conn *net.UnixConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.pending) >= maxPending {
		for i, w := range c.pending {
			if now.Sub(w.since) < evictGrace {
				break // the rest are younger still
			}
			if queued(w.conn) != 0 {
				continue
			}
			w.conn.SetReadDeadline(now)
			if c.evicted == nil {
				c.evicted = make(map[*net.UnixConn]bool)
			}
			c.evicted[w.conn] = true
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			break
		}
	}
	c.pending = append(c.pending, waiter{conn, now})
}

// read takes conn off the waiting list and reports whether it had been
// evicted from it.
func (c *conns) read(conn *net.UnixConn) (evicted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted[conn] {
		delete(c.evicted, conn)
		return true
	}
	for i, w := range c.pending {
		if w.conn == conn {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			break
		}
	}
	return false
}

// queued returns how many bytes wait unread in conn's receive queue, or -1
// if that cannot be told.
func queued(conn *net.UnixConn) int {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	})
	return n
}

// acceptLoop serves ln until it is closed. Each connection gets its own
// goroutine: no client, however slow, holds up another or the reaping of
// the container, which never waits on a connection.
func (s *Shim) acceptLoop(ctx context.Context, ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.WithError(err).Warn("accept")
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: let fds free up
			continue
		}
		if !s.conns.admit() {
			WriteMessage(conn, fail(errTooManyConns))
			conn.Close()
			continue
		}
		conn.SetReadDeadline(time.Now().Add(requestTimeout))
		s.conns.waiting(conn)
		go s.handle(ctx, conn)
	}
}

// handle serves one connection: one request, one response, and for the
// streaming operations the frames that follow. A request that is too
// large, malformed, of another protocol version or invalid gets an error
// reply and the connection is closed.
func (s *Shim) handle(ctx context.Context, conn *net.UnixConn) {
	defer s.conns.release()
	defer conn.Close()
	if err := peerAllowed(conn); err != nil {
		s.conns.read(conn)
		s.log.WithError(err).Warn("refused connection")
		return
	}
	req, r, err := s.readRequest(conn)
	if err != nil {
		WriteMessage(conn, fail(err))
		return
	}
	log := s.log.WithFields(logrus.Fields{"op": req.Op, "exec": req.Exec})
	resp, stream := s.call(ctx, req, r, conn)
	if resp.Error != "" {
		log.WithField("error", resp.Error).Info("request failed")
	}
	if err := WriteMessage(conn, resp); err != nil || stream == nil || resp.Error != "" {
		return
	}
	stream()
}

// readRequest reads and checks the one request of a connection within
// requestTimeout of its accept (the accept loop set the deadline).
func (s *Shim) readRequest(conn *net.UnixConn) (*Request, *bufio.Reader, error) {
	r := bufio.NewReader(conn)
	var req Request
	err := ReadMessage(r, &req)
	evicted := s.conns.read(conn)
	if err != nil {
		if evicted {
			return nil, nil, fmt.Errorf("%w: no request yet while %d other connections waited to send theirs: connect when ready to send", ErrInvalid, maxPending)
		}
		return nil, nil, fmt.Errorf("%w: bad request: %v", ErrInvalid, err)
	}
	conn.SetReadDeadline(time.Time{})
	if err := req.Validate(); err != nil {
		return nil, nil, err
	}
	return &req, r, nil
}

func fail(err error) *Response {
	return &Response{Version: SchemaVersion, Error: err.Error(), Code: codeOf(err)}
}

func ok() *Response { return &Response{Version: SchemaVersion} }

// call runs one request. A non-nil stream function is run after the
// response was written.
func (s *Shim) call(ctx context.Context, req *Request, r *bufio.Reader, conn *net.UnixConn) (*Response, func()) {
	if req.Op == OpStats {
		return &Response{Version: SchemaVersion, Stats: s.stats()}, nil
	}
	if !s.isCreated() {
		if req.Op == OpState {
			return &Response{Version: SchemaVersion, State: s.creatingState()}, nil
		}
		return fail(fmt.Errorf("container %s is still being created: try again once 'tether create' has returned", s.id)), nil
	}
	if req.Op == OpExec {
		return s.exec(ctx, req, r, conn)
	}
	p, err := s.target(req.Exec)
	if err != nil {
		return fail(err), nil
	}
	switch req.Op {
	case OpState:
		return &Response{Version: SchemaVersion, State: s.state()}, nil
	case OpWait:
		return s.wait(p, r), nil
	case OpAttach:
		return s.attach(p, r, conn)
	case OpDelete:
		// The shim stops only after the answer is written.
		return s.delete(ctx, req), s.stop
	}
	if err := s.control(ctx, p, req); err != nil {
		return fail(err), nil
	}
	return ok(), nil
}

// control runs the requests that change a process without streaming.
func (s *Shim) control(ctx context.Context, p *process, req *Request) error {
	switch req.Op {
	case OpStart:
		return s.start(ctx, p)
	case OpKill:
		return s.kill(ctx, p, syscall.Signal(req.Signal), req.All)
	case OpResize:
		return p.io.resize(req.Width, req.Height)
	case OpCloseStdin:
		return p.io.closeStdin()
	case OpPause, OpResume:
		return s.pause(ctx, p, req.Op == OpPause)
	}
	return fmt.Errorf("%w: unknown operation %q", ErrInvalid, req.Op)
}

// target finds the process a request names.
func (s *Shim) target(exec string) (*process, error) {
	if exec == "" {
		return s.init, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.execs[exec]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("exec %q in container %s: %w (see its execs with 'tether state %s')", exec, s.id, ErrNotFound, s.id)
}

func (s *Shim) start(ctx context.Context, p *process) error {
	if p != s.init {
		return fmt.Errorf("%w: exec'd processes start when they are created", ErrInvalid)
	}
	if status, _, _ := p.current(); status != StatusCreated {
		return &TransitionError{From: status, To: StatusRunning}
	}
	if err := s.rt.Start(ctx, s.id); err != nil {
		return err
	}
	if err := p.transition(StatusRunning); err != nil {
		// It may already have exited: start succeeded, the exit stands.
		s.log.WithError(err).Debug("start raced with exit")
	}
	return nil
}

func (s *Shim) kill(ctx context.Context, p *process, sig syscall.Signal, all bool) error {
	if sig <= 0 || sig > 64 {
		return fmt.Errorf("%w: signal %d", ErrInvalid, sig)
	}
	status, pid, _ := p.current()
	if p != s.init {
		return s.killExec(p, status, pid, sig, all)
	}
	if status == StatusStopped {
		return fmt.Errorf("container %s has exited: %w", s.id, ErrNotRunning)
	}
	err := s.rt.Kill(ctx, s.id, sig, &oci.KillOpts{All: all})
	if errors.Is(err, oci.ErrNotRunning) {
		return fmt.Errorf("container %s has exited: %w", s.id, ErrNotRunning)
	}
	if err == nil && sig == syscall.SIGKILL && status == StatusPaused {
		s.thawKilled(ctx)
	}
	return err
}

// killExec signals one exec'd process by its recorded identity.
func (s *Shim) killExec(p *process, status string, pid proc.Identity, sig syscall.Signal, all bool) error {
	if all {
		return fmt.Errorf("%w: --all signals the whole container, not one exec'd process", ErrInvalid)
	}
	if status == StatusStopped {
		return fmt.Errorf("exec %s in container %s has exited: %w", p.id, s.id, ErrNotRunning)
	}
	if err := pid.Signal(sig); err != nil {
		if errors.Is(err, proc.ErrGone) {
			return fmt.Errorf("exec %s in container %s has exited: %w", p.id, s.id, ErrNotRunning)
		}
		return err
	}
	return nil
}

// thawKilled resumes a paused container that was sent SIGKILL: a frozen
// process does not die until thawed (cgroup v1 freezer; runc thaws by
// itself, crun does not), and a killed container should end, as docker
// does for kill of a paused container.
func (s *Shim) thawKilled(ctx context.Context) {
	if err := s.rt.Resume(ctx, s.id); err != nil {
		// runc thaws a container it kills; its exit will be recorded.
		s.log.WithError(err).Debug("resume after SIGKILL of a paused container")
		return
	}
	s.init.transition(StatusRunning) // fails harmlessly if it has exited
}

func (s *Shim) pause(ctx context.Context, p *process, pause bool) error {
	if p != s.init {
		return fmt.Errorf("%w: pause applies to the whole container", ErrInvalid)
	}
	to, op := StatusPaused, s.rt.Pause
	if !pause {
		to, op = StatusRunning, s.rt.Resume
	}
	status, _, _ := p.current()
	if err := checkTransition(status, to); err != nil || status == StatusCreated {
		return fmt.Errorf("container %s is %s: %w", s.id, status, &TransitionError{From: status, To: to})
	}
	if err := op(ctx, s.id); err != nil {
		return err
	}
	return p.transition(to)
}

// wait answers once the process has exited and its record is durable, or
// gives up when the client hangs up.
func (s *Shim) wait(p *process, r *bufio.Reader) *Response {
	gone := make(chan struct{})
	go func() { r.ReadByte(); close(gone) }()
	select {
	case <-p.done:
	case <-gone:
		return fail(errors.New("client went away"))
	}
	_, _, exit := p.current()
	return &Response{Version: SchemaVersion, Exit: exit}
}

// delete removes the container: with force it is killed first. The folder
// is gone before the answer is sent; the shim then exits. A forced delete
// gets through a runtime that cannot help (binary removed, hung, its
// state lost): init is then killed by its recorded identity and the
// runtime's state folder removed by hand.
func (s *Shim) delete(ctx context.Context, req *Request) *Response {
	ctx = context.WithoutCancel(ctx)
	status, _, _ := s.init.current()
	if (status == StatusRunning || status == StatusPaused) && !req.Force {
		return fail(fmt.Errorf("container %s is %s: stop it with 'tether kill' or use 'delete --force': %w", s.id, status, ErrRunning))
	}
	deleted := false // the runtime's container is gone already
	if status != StatusStopped {
		var err error
		if deleted, err = s.stopInit(ctx); err != nil {
			return fail(err)
		}
	}
	if !deleted {
		if err := s.runtimeDelete(ctx, req.Force); err != nil {
			return fail(err)
		}
	}
	s.killExecs()
	s.init.io.close()
	s.watch.off.Store(true) // the folder's removal is ours: do not restore it
	if err := os.RemoveAll(s.dir); err != nil {
		s.watch.off.Store(false)
		return fail(fmt.Errorf("remove state folder: %w", err))
	}
	return ok()
}

// stopInitGrace is how long a forced delete waits for init to die after
// the runtime said it killed it, before killing it by identity.
const stopInitGrace = 2 * time.Second

// stopInit kills the container for a forced delete: through the runtime,
// which kills all its processes, or, if the runtime fails or init lives
// on, by init's recorded identity (pidfd). It returns once init's exit
// record is written, and reports whether the runtime's delete succeeded
// (then its container is gone and need not be deleted again).
func (s *Shim) stopInit(ctx context.Context) (deleted bool, err error) {
	grace := stopInitGrace
	if err := s.rt.Delete(ctx, s.id, &oci.DeleteOpts{Force: true}); err != nil {
		s.log.WithError(err).Warn("runtime delete --force failed: killing init by identity")
		grace = 0
	} else {
		deleted = true
	}
	select {
	case <-s.init.done:
		return deleted, nil
	case <-time.After(grace):
	}
	_, pid, _ := s.init.current()
	pid.Signal(syscall.SIGKILL) // ErrGone: it died meanwhile
	select {
	case <-s.init.done:
		return deleted, nil
	case <-time.After(deleteTimeout):
		return deleted, fmt.Errorf("container %s: init pid %d did not exit after SIGKILL", s.id, pid.Pid)
	}
}

// runtimeDelete removes the runtime's record of the stopped container. A
// runtime that no longer knows it is fine. When the runtime fails (its
// binary is gone, or it hung) the error stands unless force: then its
// state folder is removed here and the delete goes on; the container's
// cgroups, which only the runtime knows, may stay behind (empty).
func (s *Shim) runtimeDelete(ctx context.Context, force bool) error {
	err := s.rt.Delete(ctx, s.id, &oci.DeleteOpts{Force: true})
	if err == nil || errors.Is(err, oci.ErrNotFound) {
		return nil
	}
	if !force && !errors.Is(err, oci.ErrBinaryNotFound) {
		return err
	}
	s.log.WithError(err).Warn("runtime delete failed: removing its state folder by hand")
	if s.rec.RuntimeRoot != "" {
		if rerr := os.RemoveAll(filepath.Join(s.rec.RuntimeRoot, s.id)); rerr != nil {
			return fmt.Errorf("%w (and removing its state: %v)", err, rerr)
		}
	}
	return nil
}

func sortExecs(es []ExecState) {
	sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID })
}

// isCreated reports whether the runtime's create has succeeded.
func (s *Shim) isCreated() bool {
	select {
	case <-s.created:
		return true
	default:
		return false
	}
}

// creatingState is the answer to state while create still runs.
func (s *Shim) creatingState() *State {
	created := s.rec.CreatedAt
	return &State{ID: s.id, Status: StatusCreating, ShimPid: os.Getpid(),
		Bundle: s.rec.Bundle, CreatedAt: &created}
}

// stats reports the shim's own resource use.
func (s *Shim) stats() *Stats {
	fds := -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents) - 1 // the folder's own fd while it was read
	}
	open, pending := s.conns.count()
	return &Stats{Goroutines: goruntime.NumGoroutine(), FDs: fds, Conns: open, Pending: pending}
}

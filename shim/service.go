package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/runtime/oci"
)

// requestTimeout bounds how long a client may take to send its request.
const requestTimeout = 10 * time.Second

// deleteTimeout bounds the wait for init to die during a forced delete.
const deleteTimeout = 10 * time.Second

func (s *Shim) acceptLoop(ctx context.Context) {
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.WithError(err).Warn("accept")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go s.handle(ctx, conn)
	}
}

// handle serves one connection: one request, one response, and for the
// streaming operations the frames that follow.
func (s *Shim) handle(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	if err := peerAllowed(conn); err != nil {
		s.log.WithError(err).Warn("refused connection")
		return
	}
	r := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	var req Request
	if err := ReadMessage(r, &req); err != nil {
		WriteMessage(conn, &Response{Version: SchemaVersion, Error: "bad request: " + err.Error(), Code: CodeInvalid})
		return
	}
	conn.SetReadDeadline(time.Time{})
	if req.Version != SchemaVersion {
		WriteMessage(conn, &Response{Version: SchemaVersion, Code: CodeInvalid,
			Error: fmt.Sprintf("protocol version %d not supported (shim speaks %d)", req.Version, SchemaVersion)})
		return
	}
	log := s.log.WithFields(logrus.Fields{"op": req.Op, "exec": req.Exec})
	resp, stream := s.call(ctx, &req, r, conn)
	if resp.Error != "" {
		log.WithField("error", resp.Error).Info("request failed")
	}
	if err := WriteMessage(conn, resp); err != nil || stream == nil || resp.Error != "" {
		return
	}
	stream()
}

func fail(err error) *Response {
	return &Response{Version: SchemaVersion, Error: err.Error(), Code: codeOf(err)}
}

func ok() *Response { return &Response{Version: SchemaVersion} }

// call runs one request. A non-nil stream function is run after the
// response was written.
func (s *Shim) call(ctx context.Context, req *Request, r *bufio.Reader, conn *net.UnixConn) (*Response, func()) {
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
	return nil, fmt.Errorf("exec %q: %w", exec, ErrNotFound)
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
	if status == StatusStopped {
		return fmt.Errorf("process has exited: %w", ErrNotRunning)
	}
	if p != s.init {
		return pid.Signal(sig)
	}
	err := s.rt.Kill(ctx, s.id, sig, &oci.KillOpts{All: all})
	if errors.Is(err, oci.ErrNotRunning) {
		return fmt.Errorf("container has exited: %w", ErrNotRunning)
	}
	return err
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
		return &TransitionError{From: status, To: to}
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
// is gone before the answer is sent; the shim then exits.
func (s *Shim) delete(ctx context.Context, req *Request) *Response {
	ctx = context.WithoutCancel(ctx)
	status, _, _ := s.init.current()
	if (status == StatusRunning || status == StatusPaused) && !req.Force {
		return fail(fmt.Errorf("container %s is %s: stop it with 'tether kill' or use 'delete --force': %w", s.id, status, ErrRunning))
	}
	if status != StatusStopped {
		s.rt.Delete(ctx, s.id, &oci.DeleteOpts{Force: true})
		select {
		case <-s.init.done:
		case <-time.After(deleteTimeout):
			return fail(errors.New("container init did not exit after SIGKILL"))
		}
	}
	if err := s.rt.Delete(ctx, s.id, &oci.DeleteOpts{Force: true}); err != nil && !errors.Is(err, oci.ErrNotFound) {
		return fail(err)
	}
	s.killExecs()
	s.init.io.close()
	if err := os.RemoveAll(s.dir); err != nil {
		return fail(fmt.Errorf("remove state folder: %w", err))
	}
	return ok()
}

func sortExecs(es []ExecState) {
	sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID })
}

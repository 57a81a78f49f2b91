package shim

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/runtime/oci"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidID returns nil for a usable container or exec ID, otherwise an
// ErrInvalid error that says what an ID may hold.
func ValidID(id string) error {
	if idPattern.MatchString(id) {
		return nil
	}
	return fmt.Errorf("%w: ID %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", ErrInvalid, id)
}

// attach streams a process's live output to the client and its input to
// the process.
func (s *Shim) attach(p *process, r *bufio.Reader, conn *net.UnixConn) (*Response, func()) {
	fl := p.io.fan.add()
	return ok(), func() { s.stream(p, fl, r, conn) }
}

// stream runs a streaming connection: output frames out, input frames in,
// and a final exit frame once the process's exit record is durable. A
// follower that fell behind is dropped and its connection closed.
func (s *Shim) stream(p *process, fl *follower, r *bufio.Reader, conn *net.UnixConn) {
	go s.readInput(p, fl, r)
	for c := range fl.ch {
		if err := WriteFrame(conn, c.kind, c.data); err != nil {
			p.io.fan.remove(fl)
			for range fl.ch {
			}
			return
		}
	}
	p.io.fan.mu.Lock()
	finished := p.io.fan.done
	p.io.fan.mu.Unlock()
	if !finished {
		return
	}
	<-p.done
	_, _, exit := p.current()
	b, _ := json.Marshal(exit)
	WriteFrame(conn, FrameExit, b)
}

// readInput forwards the client's frames until it hangs up.
func (s *Shim) readInput(p *process, fl *follower, r *bufio.Reader) {
	buf := make([]byte, 32*1024)
	for {
		kind, data, err := ReadFrame(r, buf)
		if err != nil {
			p.io.fan.remove(fl)
			return
		}
		switch kind {
		case FrameStdin:
			err = p.io.writeStdin(data)
		case FrameCloseStdin:
			err = p.io.closeStdin()
		case FrameResize:
			if len(data) == 4 {
				err = p.io.resize(binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:]))
			}
		}
		if err != nil {
			s.log.WithError(err).Debug("attach input")
		}
	}
}

// exec starts an exec'd process; with Attach the connection then streams
// its IO.
func (s *Shim) exec(ctx context.Context, req *Request, r *bufio.Reader, conn *net.UnixConn) (*Response, func()) {
	p, fl, err := s.newExec(ctx, req)
	if err != nil {
		return fail(err), nil
	}
	_, pid, _ := p.current()
	resp := &Response{Version: SchemaVersion, State: &State{ID: p.id, Status: StatusRunning, Pid: pid.Pid}}
	if fl == nil {
		return resp, nil
	}
	return resp, func() { s.stream(p, fl, r, conn) }
}

// reserveExec claims an exec ID while the container runs.
func (s *Shim) reserveExec(req *Request) (*process, error) {
	if err := ValidID(req.Exec); err != nil {
		return nil, err
	}
	if req.Process == nil || len(req.Process.Args) == 0 {
		return nil, fmt.Errorf("%w: exec needs a command", ErrInvalid)
	}
	if status, _, _ := s.init.current(); status != StatusRunning {
		return nil, fmt.Errorf("container %s is %s: exec needs a running container: %w", s.id, status, ErrNotRunning)
	}
	dir := filepath.Join(s.dir, ExecDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.execs[req.Exec]; ok {
		return nil, fmt.Errorf("exec %q: %w", req.Exec, ErrExists)
	}
	p := newProcess(req.Exec, dir, req.Exec+".exit.json", nil)
	s.execs[req.Exec] = p
	return p, nil
}

func (s *Shim) newExec(ctx context.Context, req *Request) (*process, *follower, error) {
	p, err := s.reserveExec(req)
	if err != nil {
		return nil, nil, err
	}
	log, err := crilog.Open(filepath.Join(p.dir, p.id+".log"), crilog.Options{
		MaxSize: s.rec.LogMaxSize, MaxFiles: s.rec.LogMaxFiles})
	if err != nil {
		s.dropExec(p)
		return nil, nil, fmt.Errorf("open exec log: %w", err)
	}
	p.io = &procIO{log: log}
	var fl *follower
	if req.Attach {
		fl = p.io.fan.add() // before the process starts: nothing is missed
	}
	if err := s.startExec(ctx, p, req); err != nil {
		p.io.close()
		s.dropExec(p)
		return nil, nil, err
	}
	return p, fl, nil
}

func (s *Shim) startExec(ctx context.Context, p *process, req *Request) error {
	spec := *req.Process
	spec.Terminal = req.Terminal
	opts := &oci.ExecOpts{PidFile: filepath.Join(p.dir, p.id+".runtime.pid"),
		ProcessFile: filepath.Join(p.dir, p.id+".process.json")}
	since := time.Now()
	err := s.withIO(ctx, p.io, req.Terminal, req.Stdin, consolePath(p.dir, p.id),
		func(io *stdioFiles, cs string) error {
			setExecIO(opts, io, cs)
			_, err := s.rt.Exec(ctx, s.id, spec, opts)
			return err
		})
	if err != nil {
		return err
	}
	p.transition(StatusRunning)
	return s.track(p, opts.PidFile, since)
}

func (s *Shim) dropExec(p *process) {
	s.mu.Lock()
	delete(s.execs, p.id)
	s.mu.Unlock()
	for _, suffix := range []string{".log", ".process.json", ".runtime.pid", ".pid"} {
		os.Remove(filepath.Join(p.dir, p.id+suffix))
	}
}

// consolePath is where a console socket for a process goes; a path too
// long for a socket address moves to a private temporary folder.
func consolePath(dir, id string) string {
	p := filepath.Join(dir, id+".console.sock")
	if len(p) <= maxSunPath {
		return p
	}
	tmp, err := os.MkdirTemp("", "tcs")
	if err != nil {
		return p
	}
	return filepath.Join(tmp, "c.sock")
}

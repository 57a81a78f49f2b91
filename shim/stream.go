package shim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
	"github.com/tether-run/tether/runtime/oci"
)

// ValidID returns nil for a usable container or exec ID, otherwise an
// ErrInvalid error that says what an ID may hold.
func ValidID(id string) error {
	if idPattern(id) {
		return nil
	}
	return fmt.Errorf("%w: ID %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", ErrInvalid, id)
}

// idPattern reports whether id matches ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$.
// It is written out by hand: compiling that regexp at start-up cost each
// shim about 230 KiB of resident memory (README, "Shim memory").
func idPattern(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
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
	if !p.io.fan.deliver(fl, conn) {
		return // dropped or gone: no exit frame after missing output
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

// ExecRetention is how many finished exec'd processes a shim keeps. The
// records of a finished exec (its exit record and its log) stay, and so
// does its entry in State, until ExecRetention newer execs have finished;
// then the oldest finished exec's files are removed and its ID may be used
// again. Running execs are never pruned. This bounds the exec folder of a
// long-running container that is exec'd into all day, while a status stays
// readable long after the exec ended.
const ExecRetention = 100

// reserveExec claims an exec ID while the container runs.
func (s *Shim) reserveExec(req *Request) (*process, error) {
	if err := ValidID(req.Exec); err != nil {
		return nil, err
	}
	if req.Process == nil || len(req.Process.Args) == 0 {
		return nil, fmt.Errorf("%w: exec needs a command", ErrInvalid)
	}
	if err := s.execAllowed(); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.dir, ExecDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.execs[req.Exec]; ok {
		return nil, fmt.Errorf("exec ID %q is already used in container %s: choose another --exec-id: %w", req.Exec, s.id, ErrExists)
	}
	p := newProcess(req.Exec, dir, req.Exec+".exit.json", nil)
	s.execs[req.Exec] = p
	return p, nil
}

// execAllowed refuses an exec unless init runs, saying what to do.
func (s *Shim) execAllowed() error {
	switch status, _, _ := s.init.current(); status {
	case StatusRunning:
		return nil
	case StatusPaused:
		return fmt.Errorf("container %s is paused: resume it with 'tether resume %s' before exec: %w", s.id, s.id, ErrNotRunning)
	case StatusCreated:
		return fmt.Errorf("container %s is created but not started: start it with 'tether start %s' before exec: %w", s.id, s.id, ErrNotRunning)
	default:
		return fmt.Errorf("container %s is %s: exec needs a running container: %w", s.id, status, ErrNotRunning)
	}
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
	p.io = &procIO{log: log, warn: s.warnDropped}
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

// startExec runs the runtime's exec --detach and tracks the new process.
// The process spec and the runtime's pid file are scratch files, removed
// once the runtime has returned.
func (s *Shim) startExec(ctx context.Context, p *process, req *Request) error {
	spec := *req.Process
	spec.Terminal = req.Terminal
	opts := &oci.ExecOpts{ProcessFile: filepath.Join(p.dir, "."+p.id+".process.json"),
		PidFile: filepath.Join(p.dir, "."+p.id+".runtime.pid")}
	defer os.Remove(opts.ProcessFile)
	defer os.Remove(opts.PidFile)
	since := time.Now()
	var pid int
	err := s.withIO(ctx, p.io, req.Terminal, req.Stdin, consolePath(p.dir, p.id),
		func(io *stdioFiles, cs string) error {
			setExecIO(opts, io, cs)
			var err error
			pid, err = s.execRuntime(&spec).Exec(ctx, s.id, spec, opts)
			return err
		})
	if err != nil {
		if pid > 0 { // started, but its IO could not be set up
			if id, ierr := proc.Identify(pid); ierr == nil {
				id.Signal(syscall.SIGKILL)
			}
		}
		return err
	}
	p.transition(StatusRunning)
	if err := s.trackPid(p, pid, since); err != nil {
		return err
	}
	// init may have exited while the runtime ran: its killExecs did not
	// see this pid, so do its work here.
	if status, _, _ := s.init.current(); status == StatusStopped {
		p.kill(syscall.SIGKILL, ReasonInitExited)
	}
	return nil
}

// dropExec forgets an exec that never started.
func (s *Shim) dropExec(p *process) {
	s.mu.Lock()
	delete(s.execs, p.id)
	s.mu.Unlock()
	for _, suffix := range []string{".log", ".pid", ".exit.json" + reserveSuffix} {
		os.Remove(filepath.Join(p.dir, p.id+suffix))
	}
}

// execExitReason says why an exec'd process's status is not its own: the
// shim killed it, or it died of SIGKILL while init was exiting (the kernel
// kills every process of a pid namespace whose init exits, and reaps them
// before init's own exit is reported).
func (s *Shim) execExitReason(p *process, e reaper.Exit) string {
	if r := p.killedBy(); r != "" {
		return r
	}
	if e.Status == 128+int(syscall.SIGKILL) && s.initEnding() {
		return ReasonInitExited
	}
	return ""
}

// initEnding reports whether init has exited or is on its way out.
func (s *Shim) initEnding() bool {
	status, pid, _ := s.init.current()
	return status == StatusStopped || exiting(pid)
}

// pfExiting is the kernel's PF_EXITING task flag.
const pfExiting = 0x4

// exiting reports whether the process id names has gone or has begun to
// exit (PF_EXITING in field 9 of /proc/PID/stat, set while the kernel
// tears down a pid namespace whose init is exiting).
func exiting(id proc.Identity) bool {
	if id.Pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(id.Pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[19] != strconv.FormatUint(id.StartTime, 10) {
		return true // the pid belongs to someone else now
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return f[0] == "Z" || f[0] == "X" || (err == nil && flags&pfExiting != 0)
}

// execFinished runs once an exec'd process's exit record is written: it
// releases the process's IO, removes its pid record (the exit record now
// names the pid) and prunes finished execs beyond ExecRetention.
func (s *Shim) execFinished(p *process) {
	p.io.close()
	os.Remove(filepath.Join(p.dir, p.pidName()))
	s.mu.Lock()
	s.finished = append(s.finished, p)
	var old []*process
	if n := len(s.finished) - ExecRetention; n > 0 {
		old = append(old, s.finished[:n]...)
		s.finished = append([]*process(nil), s.finished[n:]...)
	}
	s.mu.Unlock()
	for _, o := range old {
		s.forgetExec(o)
	}
}

// forgetExec removes a finished exec's files, then its ID, so the ID is
// not reused while its old files are still there.
func (s *Shim) forgetExec(p *process) {
	log := filepath.Join(p.dir, p.id+".log")
	os.Remove(filepath.Join(p.dir, p.exitName))
	os.Remove(log)
	for i := 1; i <= s.rec.LogMaxFiles; i++ {
		os.Remove(log + "." + strconv.Itoa(i))
	}
	s.mu.Lock()
	if s.execs[p.id] == p {
		delete(s.execs, p.id)
	}
	s.mu.Unlock()
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

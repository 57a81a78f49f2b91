package shim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/reaper"
)

// ExecRetention is how many finished exec'd processes a shim keeps. The
// records of a finished exec (its exit record and its log) stay, and so
// does its entry in State, until ExecRetention newer execs have finished;
// then the oldest finished exec's files are removed and its ID may be used
// again. Running execs are never pruned. This bounds the exec folder of a
// long-running container that is exec'd into all day, while a status stays
// readable long after the exec ended.
const ExecRetention = 100

// ExecConfig describes a process to start in the running container.
type ExecConfig struct {
	// ID names it (ids.ValidID); it must not name an exec still kept.
	ID string
	// Process is its spec (args, env, cwd, user...); Terminal is taken
	// from the field below, not from the spec.
	Process specs.Process
	// Terminal gives it a pty; Stdin keeps a pipe to its input.
	Terminal, Stdin bool
	// IO says where its output goes (default: exec/ID.log in the store).
	IO IO
	// Attach returns a Follower registered before the process starts, so
	// none of its output is missed.
	Attach bool
}

// Exec starts a process in the running container through the runtime's
// exec --detach. It returns its pid and, with cfg.Attach, a Follower of
// its output. The shim reaps it and writes its exit record (Wait). A
// container that is not running gives ErrNotRunning (paused included), an
// ID in use ErrExists, a command that is not there ErrCommandNotFound.
func (s *Shim) Exec(ctx context.Context, cfg ExecConfig) (int, *Follower, error) {
	if err := s.ready(); err != nil {
		return 0, nil, err
	}
	p, err := s.reserveExec(cfg)
	if err != nil {
		return 0, nil, err
	}
	pio, err := s.openIO(p.files, cfg.IO)
	if err != nil {
		s.dropExec(p, err)
		return 0, nil, err
	}
	var fl *Follower
	if cfg.Attach {
		fl = pio.fan.add() // before the process starts: nothing is missed
	}
	// Visible to resize, stdin and attach only once its IO is whole; set
	// under s.mu, which target reads it under.
	s.mu.Lock()
	p.io = pio
	s.mu.Unlock()
	if err := s.startExec(ctx, p, cfg); err != nil {
		pio.close()
		s.dropExec(p, err)
		return 0, nil, err
	}
	_, pid, _ := p.current()
	s.journalStart(p)
	return pid.Pid, fl, nil
}

// reserveExec claims an exec ID while the container runs.
func (s *Shim) reserveExec(cfg ExecConfig) (*process, error) {
	if err := ids.ValidID(cfg.ID); err != nil {
		return nil, err
	}
	if len(cfg.Process.Args) == 0 {
		return nil, fmt.Errorf("%w: exec needs a command", ErrInvalid)
	}
	if err := s.execAllowed(); err != nil {
		return nil, err
	}
	if err := s.st.MakeExecDir(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.execs[cfg.ID]; ok {
		return nil, fmt.Errorf("exec ID %q is already used in container %s: %w", cfg.ID, s.id, ErrExists)
	}
	p := s.newProcess(cfg.ID, s.st.Exec(cfg.ID), nil)
	s.execs[cfg.ID] = p
	return p, nil
}

// NotRunningError says why a container cannot take an exec: its Status.
// It wraps ErrNotRunning; a front end adds what to do about it.
type NotRunningError struct {
	ID, Status string
}

func (e *NotRunningError) Error() string {
	switch e.Status {
	case StatusPaused:
		return fmt.Sprintf("container %s is paused", e.ID)
	case StatusCreated:
		return fmt.Sprintf("container %s is created but not started", e.ID)
	}
	return fmt.Sprintf("container %s is %s: exec needs a running container", e.ID, e.Status)
}

func (e *NotRunningError) Unwrap() error { return ErrNotRunning }

// execAllowed refuses an exec unless init runs.
func (s *Shim) execAllowed() error {
	if status, _, _ := s.init.current(); status != StatusRunning {
		return &NotRunningError{ID: s.id, Status: status}
	}
	return nil
}

// startExec runs the runtime's exec --detach and tracks the new process.
// The process spec and the runtime's pid file are scratch files, removed
// once the runtime has returned.
func (s *Shim) startExec(ctx context.Context, p *process, cfg ExecConfig) error {
	spec := cfg.Process
	spec.Terminal = cfg.Terminal
	opts := &oci.ExecOpts{ProcessFile: p.files.ScratchSpec(), PidFile: p.files.ScratchPid()}
	defer os.Remove(opts.ProcessFile)
	defer os.Remove(opts.PidFile)
	since := time.Now()
	var pid int
	err := s.withIO(ctx, p.io, cfg.Terminal, cfg.Stdin, cfg.IO.Stdin, p.files,
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
		return fromOCI(err)
	}
	if err := p.transition(StatusRunning); err != nil {
		return err
	}
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

// dropExec forgets an exec that never started. Whoever waits for it
// already (a wait that raced the start) is woken with cause, so no waiter
// blocks for ever on a process that will never exit.
func (s *Shim) dropExec(p *process, cause error) {
	s.mu.Lock()
	if s.execs[p.id] == p {
		delete(s.execs, p.id)
	}
	s.mu.Unlock()
	p.files.Forget(0)
	p.mu.Lock()
	p.failed = cause
	p.mu.Unlock()
	p.wake()
}

// execExitReason says why an exec'd process's status is not its own: the
// shim killed it, or it died of SIGKILL while init was exiting (the kernel
// kills every process of a pid namespace whose init exits, and reaps them
// before init's own exit is reported).
func (s *Shim) execExitReason(p *process, e reaper.Exit) string {
	// Killed for init's exit but not dead of that SIGKILL, it had ended on
	// its own (a zombie reaped after init, as after an upgrade's handoff):
	// its status is its own and needs no reason.
	if r := p.killedBy(); r != "" && (r != ReasonInitExited || e.Status == 128+int(syscall.SIGKILL)) {
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
	if err := p.files.RemovePid(); err != nil {
		s.log.WithError(err).WithField("exec", p.id).Warn("pid record not removed")
	}
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
	p.files.Forget(s.rec.LogMaxFiles)
	s.mu.Lock()
	if s.execs[p.id] == p {
		delete(s.execs, p.id)
	}
	s.mu.Unlock()
}

// copyStdin copies a front end's input source into the process's stdin
// until it ends, then closes the stdin.
func copyStdin(w io.WriteCloser, r io.Reader) {
	io.Copy(w, r)
	w.Close()
}

package shim

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
	"github.com/tether-run/tether/store"
)

// ReasonInitExited is the Reason of an exec'd process's exit record when it
// was killed because the container's init had exited: by the kernel (a
// private pid namespace dies with its init) or by the shim (a shared one).
const ReasonInitExited = "killed: container init exited"

// reasonUndrained is the Reason of an exit whose output could not be
// drained in time.
const reasonUndrained = "output still held open by another process after exit; the log may miss its tail"

// process is the container's init or one exec'd process: its lifecycle
// state, identity, exit and IO. The shim's exit dispatcher is the only
// caller of exited.
//
// Two locks. mu guards the fields and is held only briefly, so State and
// the exit path never wait for a runtime call. op serialises the control
// operations (start, pause, resume, kill) of the process: each reads the
// status, calls the runtime and sets the new status under op, so two of
// them never act on the same stale status. Every status change goes
// through transition (the table in state.go).
type process struct {
	id    string // exec id; "" for init
	files store.Proc
	io    *procIO

	op sync.Mutex

	// startJournal journals the process's start once, before its exit:
	// from Start or Exec, or from the exit path when the process ended
	// before they got to it. starting says a start was asked for (init).
	startJournal sync.Once
	starting     atomic.Bool

	mu     sync.Mutex
	status string
	pid    proc.Identity
	exit   *store.ExitRecord
	killed string        // why the shim killed it, if it did
	failed error         // why an exec'd process never started (dropExec)
	pidfd  int           // adopted: the pidfd its watcher polls (0: none)
	done   chan struct{} // closed once exit is durable, or the start failed
}

// newProcess makes a process in the created state and reserves room for
// its exit record (on a full disk it can still be written); a failed
// reservation is logged, since that guarantee is then off.
func (s *Shim) newProcess(id string, files store.Proc, pio *procIO) *process {
	if err := files.Reserve(); err != nil {
		s.log.WithError(err).WithField("exec", id).Warn("no room reserved for the exit record: it may not be written on a full disk")
	}
	return &process{id: id, files: files, io: pio, status: StatusCreated, done: make(chan struct{})}
}

// transition moves the process to a new state if that move is legal.
func (p *process) transition(to string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.transitionLocked(to)
}

// transitionLocked is transition with p.mu held.
func (p *process) transitionLocked(to string) error {
	if err := checkTransition(p.status, to); err != nil {
		return err
	}
	p.status = to
	return nil
}

func (p *process) current() (string, proc.Identity, *store.ExitRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.pid, p.exit
}

// pidNow is the process's pid, 0 before it is known.
func (p *process) pidNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid.Pid
}

func (p *process) setPid(id proc.Identity) {
	p.mu.Lock()
	p.pid = id
	p.mu.Unlock()
}

// kill signals the process on behalf of the shim and remembers why, so
// its exit record can say so. A process that has exited is left alone.
func (p *process) kill(sig syscall.Signal, reason string) {
	p.mu.Lock()
	if p.status == StatusStopped || p.pid.Pid <= 0 {
		p.mu.Unlock()
		return
	}
	p.killed = reason
	pid := p.pid
	p.mu.Unlock()
	pid.Signal(sig) // ErrGone: it ended on its own, which is what we wanted
}

// setKilled says why the shim is about to end the process ("" takes it
// back), for its exit record.
func (p *process) setKilled(reason string) {
	p.mu.Lock()
	p.killed = reason
	p.mu.Unlock()
}

// killedBy returns the reason given to kill, "" if the shim never killed it.
func (p *process) killedBy() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}

// exited records the end of the process: it waits for the output still in
// the pipes, then writes the exit record durably and marks the process
// stopped under one hold of p.mu, so anyone who asks the shim after the
// record appeared on disk gets an answer that agrees with it. Waiters are
// not woken here: the caller finishes its clean-up, then calls wake. The
// record is returned even when writing it failed.
//
// oomKills is the container's OOM kill count to record (0 for none, or
// for an exec'd process).
func (p *process) exited(e reaper.Exit, reason string, oomKills uint64) (*store.ExitRecord, error) {
	drained := p.io.waitDrained()
	rec := &store.ExitRecord{Version: store.Version, Pid: e.Pid, Status: e.Status,
		ExitedAt: e.Timestamp.UTC(), Reason: reason, OOMKilled: oomKills > 0, OOMKills: oomKills}
	if !drained && reason == "" {
		rec.Reason = reasonUndrained
	}
	p.mu.Lock()
	err := p.files.WriteExit(rec)
	terr := p.transitionLocked(StatusStopped)
	p.exit = rec
	p.mu.Unlock()
	if terr != nil {
		return rec, fmt.Errorf("exit of pid %d: %w", e.Pid, terr) // recorded twice: a bug
	}
	if err != nil {
		return rec, fmt.Errorf("write exit record of pid %d: %w", e.Pid, err)
	}
	return rec, nil
}

// wake tells every waiter that the process has exited; exited must have
// run first.
func (p *process) wake() { close(p.done) }

// procState describes the process for State. While the container is
// paused a running exec'd process is frozen too, and says so.
func (p *process) procState(paused bool) ProcState {
	status, pid, exit := p.current()
	if paused && status == StatusRunning {
		status = StatusPaused
	}
	return ProcState{ID: p.id, Status: status, Pid: pid.Pid, Exit: exit}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
)

// ReasonInitExited is the Reason of an exec'd process's exit record when it
// was killed because the container's init had exited: by the kernel (a
// private pid namespace dies with its init) or by the shim (a shared one).
const ReasonInitExited = "killed: container init exited"

// process is the container's init or one exec'd process: its lifecycle
// state, identity, exit and IO. The shim's exit dispatcher is the only
// caller of exited.
type process struct {
	id       string // exec id; "" for init
	dir      string // folder of its records
	exitName string // name of its exit record in dir
	io       *procIO

	mu     sync.Mutex
	status string
	pid    proc.Identity
	exit   *ExitRecord
	killed string        // why the shim killed it, if it did
	done   chan struct{} // closed once exit is durable
}

func newProcess(id, dir, exitName string, pio *procIO) *process {
	reserveExit(dir, exitName) // room for the exit record on a full disk
	return &process{id: id, dir: dir, exitName: exitName, io: pio,
		status: StatusCreated, done: make(chan struct{})}
}

// transition moves the process to a new state if that move is legal.
func (p *process) transition(to string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := checkTransition(p.status, to); err != nil {
		return err
	}
	p.status = to
	return nil
}

func (p *process) current() (string, proc.Identity, *ExitRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.pid, p.exit
}

// pidName is the name of the process's identity record in p.dir.
func (p *process) pidName() string {
	if p.id == "" {
		return InitPidFile
	}
	return p.id + ".pid"
}

// recordPid writes the identity of pid as the process's pid record (see
// WritePid: atomic, not synced). A process already gone gives an error
// satisfying errors.Is(err, proc.ErrGone) and writes nothing.
func (p *process) recordPid(pid int) (proc.Identity, error) {
	return WritePid(p.dir, p.pidName(), pid)
}

// writeVolatile replaces dir/name with v as JSON through a temporary file
// and a rename, without fsync: atomic for readers, not durable.
func writeVolatile(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
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
// not woken here: the caller finishes its clean-up, then calls wake.
func (p *process) exited(e reaper.Exit, reason string) error {
	drained := p.io.waitDrained()
	rec := &ExitRecord{Version: SchemaVersion, Pid: e.Pid, Status: e.Status,
		ExitedAt: e.Timestamp.UTC(), Reason: reason}
	if !drained && reason == "" {
		rec.Reason = "output still held open by another process after exit; the log may miss its tail"
	}
	p.mu.Lock()
	err := writeExit(p.dir, p.exitName, rec)
	p.status, p.exit = StatusStopped, rec
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write exit record of pid %d: %w", e.Pid, err)
	}
	return nil
}

// wake tells every waiter that the process has exited; exited must have
// run first.
func (p *process) wake() { close(p.done) }

// execState describes an exec'd process for State. While the container
// is paused a running exec'd process is frozen too, and says so.
func (p *process) execState(paused bool) ExecState {
	status, pid, exit := p.current()
	if paused && status == StatusRunning {
		status = StatusPaused
	}
	es := ExecState{ID: p.id, Status: status, Pid: pid.Pid}
	if exit != nil {
		es.ExitStatus, es.ExitedAt, es.Reason = &exit.Status, timePtr(exit.ExitedAt), exit.Reason
	}
	return es
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

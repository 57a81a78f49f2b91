package shim

import (
	"fmt"
	"sync"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/reaper"
)

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
	done   chan struct{} // closed once exit is durable
}

func newProcess(id, dir, exitName string, pio *procIO) *process {
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

// exited records the end of the process: it waits for the output still in
// the pipes, writes the exit record durably and only then wakes waiters.
func (p *process) exited(e reaper.Exit, reason string) error {
	drained := p.io.waitDrained()
	rec := &ExitRecord{Version: SchemaVersion, Pid: e.Pid, Status: e.Status,
		ExitedAt: e.Timestamp.UTC(), Reason: reason}
	if !drained && reason == "" {
		rec.Reason = "output still held open by another process after exit; the log may miss its tail"
	}
	err := WriteJSON(p.dir, p.exitName, rec)
	p.mu.Lock()
	p.status, p.exit = StatusStopped, rec
	p.mu.Unlock()
	close(p.done)
	if err != nil {
		return fmt.Errorf("write exit record of pid %d: %w", e.Pid, err)
	}
	return nil
}

// execState describes an exec'd process for State.
func (p *process) execState() ExecState {
	status, pid, exit := p.current()
	es := ExecState{ID: p.id, Status: status, Pid: pid.Pid}
	if exit != nil {
		es.ExitStatus, es.ExitedAt = &exit.Status, timePtr(exit.ExitedAt)
	}
	return es
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

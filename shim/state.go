package shim

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/tether-run/tether/store"
)

// Status values of a container or process.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusPaused  = "paused"
	StatusStopped = "stopped"
	// StatusCreating: Create (or Adopt) has not returned yet; the
	// container is not usable.
	StatusCreating = "creating"
)

// State describes the container as its shim sees it.
type State struct {
	ID      string
	Status  string
	Pid     int // init's pid; 0 while creating
	ShimPid int
	Bundle  string
	// CreatedAt is when the manager made the record.
	CreatedAt time.Time
	// Exit is init's exit record once it has stopped.
	Exit *store.ExitRecord
	// AdoptedAt is when this shim took the container over from a shim
	// that died (Adopt); zero for a shim that created it. Output written
	// before then may be missing from the log, and stdin is not kept.
	AdoptedAt time.Time
	// Execs are the exec'd processes still kept (see ExecRetention),
	// sorted by ID.
	Execs []ProcState
}

// ProcState describes one exec'd process.
type ProcState struct {
	ID     string
	Status string
	Pid    int
	// Exit is its exit record once it has stopped. Its Reason says why the
	// status is not the process's own doing (ReasonInitExited), if so.
	Exit *store.ExitRecord
}

// State describes the container and its exec'd processes. Before Create
// or Adopt has returned, Status is StatusCreating.
func (s *Shim) State() State {
	st := State{ID: s.id, ShimPid: os.Getpid(), Bundle: s.rec.Bundle, CreatedAt: s.rec.CreatedAt}
	if !s.isCreated() {
		st.Status = StatusCreating
		return st
	}
	status, pid, exit := s.init.current()
	st.Status, st.Pid, st.Exit, st.AdoptedAt = status, pid.Pid, exit, s.adopted
	s.mu.Lock()
	for _, p := range s.execs {
		st.Execs = append(st.Execs, p.procState(status == StatusPaused))
	}
	s.mu.Unlock()
	sort.Slice(st.Execs, func(i, j int) bool { return st.Execs[i].ID < st.Execs[j].ID })
	return st
}

// TransitionError is returned when an operation asks a process to move to
// a state it cannot reach from where it is (start twice, pause a stopped
// container). It wraps ErrNotRunning or ErrRunning as fits.
type TransitionError struct {
	From, To string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot go from %s to %s", e.From, e.To)
}

// Unwrap gives the sentinel that best describes the refusal.
func (e *TransitionError) Unwrap() error {
	if e.From == StatusStopped {
		return ErrNotRunning
	}
	return ErrRunning
}

// allowed lists the legal moves of a process's lifecycle.
var allowed = map[string][]string{
	StatusCreated: {StatusRunning, StatusStopped},
	StatusRunning: {StatusPaused, StatusStopped},
	StatusPaused:  {StatusRunning, StatusStopped},
	StatusStopped: {},
}

// checkTransition returns nil when from -> to is a legal move.
func checkTransition(from, to string) error {
	for _, s := range allowed[from] {
		if s == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}

// isCreated reports whether Create or Adopt has succeeded.
func (s *Shim) isCreated() bool {
	select {
	case <-s.created:
		return true
	default:
		return false
	}
}

package runtime

import (
	"time"

	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
)

// Status values of a container or of an exec'd process: the wire's own
// strings, which State carries through unchanged.
const (
	StatusCreated = shimapi.StatusCreated
	StatusRunning = shimapi.StatusRunning
	StatusPaused  = shimapi.StatusPaused
	StatusStopped = shimapi.StatusStopped
	StatusUnknown = shimapi.StatusUnknown
	// StatusCreating: its shim is still running the OCI runtime's create.
	StatusCreating = shimapi.StatusCreating
)

// State is what the manager reports of a container. ExitStatus and
// ExitedAt are set once it has stopped; Reason explains an unknown status
// or an exit status that is not the container's own. Its JSON form is the
// one `tether state` prints.
type State struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	Pid        int        `json:"pid"`
	ShimPid    int        `json:"shim_pid,omitempty"`
	Bundle     string     `json:"bundle,omitempty"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	ExitStatus *int       `json:"exit_status,omitempty"`
	ExitedAt   *time.Time `json:"exited_at,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	// OOMKilled says the kernel's OOM killer killed a process of the
	// container while it ran (from init's durable exit record, so a
	// manager that was down at the time still sees it); OOMKills is how
	// many.
	OOMKilled bool   `json:"oom_killed,omitempty"`
	OOMKills  uint64 `json:"oom_kills,omitempty"`
	// AdoptedAt is when the serving shim took the container over from a
	// shim that died: output written before then and while no shim ran
	// may be missing from the log, and stdin is not kept.
	AdoptedAt *time.Time  `json:"adopted_at,omitempty"`
	Execs     []ExecState `json:"execs,omitempty"`
	// AutoRemove: the container is removed once it has exited
	// (CreateOpts.AutoRemove).
	AutoRemove bool `json:"auto_remove,omitempty"`
	// Removed: this call found the auto-remove container stopped with its
	// shim gone (it died before removing it) and finished the removal:
	// this is its last state, and the container is gone.
	Removed bool `json:"removed,omitempty"`
	// Remedy is what can be done about an unknown status (RemedyNone
	// when nothing): Reason says what is wrong and names no command.
	Remedy Remedy `json:"-"`
}

// ExecState describes one exec'd process in State.Execs.
type ExecState struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	Pid        int        `json:"pid"`
	ExitStatus *int       `json:"exit_status,omitempty"`
	ExitedAt   *time.Time `json:"exited_at,omitempty"`
	// Reason says why the exit status is not the process's own doing (for
	// example ReasonInitExited); empty otherwise.
	Reason string `json:"reason,omitempty"`
}

// ExitRecord is the end of a process as its shim recorded it: Status is
// the exit code, or 128+N after signal N, or UnknownExitStatus with a
// Reason when nobody could see it.
type ExitRecord struct {
	Pid      int       `json:"pid"`
	Status   int       `json:"status"`
	ExitedAt time.Time `json:"exited_at"`
	Reason   string    `json:"reason,omitempty"`
	// OOMKilled and OOMKills: see State (init only).
	OOMKilled bool   `json:"oom_killed,omitempty"`
	OOMKills  uint64 `json:"oom_kills,omitempty"`
}

// Stats is a shim's own resource use.
type Stats struct {
	Goroutines, FDs int
	// Conns is the number of control connections open (the asking one
	// included); Pending how many of them have not sent a request yet.
	Conns, Pending int
}

// Record is what the container was created with.
type Record struct {
	ID          string
	Bundle      string
	Runtime     string   // the OCI runtime binary
	RuntimeArgs []string // its extra global arguments
	Terminal    bool
	Stdin       bool
	LogMaxSize  int64 // bytes; 0 never rotates
	LogMaxFiles int
	CreatedAt   time.Time
	AutoRemove  bool // removed once it has exited
}

func fromRecord(r *store.Record) *Record {
	return &Record{ID: r.ID, Bundle: r.Bundle, Runtime: r.Runtime, RuntimeArgs: r.RuntimeArgs,
		Terminal: r.Terminal, Stdin: r.Stdin, LogMaxSize: r.LogMaxSize, LogMaxFiles: r.LogMaxFiles,
		CreatedAt: r.CreatedAt, AutoRemove: r.AutoRemove}
}

func fromWireState(w *shimapi.State) *State {
	st := &State{ID: w.ID, Status: w.Status, Pid: w.Pid, ShimPid: w.ShimPid, Bundle: w.Bundle,
		CreatedAt: w.CreatedAt, ExitStatus: w.ExitStatus, ExitedAt: w.ExitedAt, Reason: w.Reason,
		OOMKilled: w.OOMKilled, OOMKills: w.OOMKills, AdoptedAt: w.AdoptedAt}
	for _, e := range w.Execs {
		st.Execs = append(st.Execs, ExecState{ID: e.ID, Status: e.Status, Pid: e.Pid,
			ExitStatus: e.ExitStatus, ExitedAt: e.ExitedAt, Reason: e.Reason})
	}
	return st
}

func fromWireExit(e *shimapi.Exit) *ExitRecord {
	if e == nil {
		return nil
	}
	return &ExitRecord{Pid: e.Pid, Status: e.Status, ExitedAt: e.ExitedAt, Reason: e.Reason,
		OOMKilled: e.OOMKilled, OOMKills: e.OOMKills}
}

func fromStoreExit(e *store.ExitRecord) *ExitRecord {
	if e == nil {
		return nil
	}
	return &ExitRecord{Pid: e.Pid, Status: e.Status, ExitedAt: e.ExitedAt, Reason: e.Reason,
		OOMKilled: e.OOMKilled, OOMKills: e.OOMKills}
}

package shimapi

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/cgroups"
	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/internal/ids"
)

// Operations, as they appear in Request.Op.
const (
	OpState      = "state"
	OpStart      = "start"
	OpKill       = "kill"
	OpWait       = "wait"
	OpDelete     = "delete"
	OpExec       = "exec"
	OpAttach     = "attach"
	OpResize     = "resize"
	OpCloseStdin = "close_stdin"
	OpPause      = "pause"
	OpResume     = "resume"
	OpStats      = "stats"
	// OpUpgrade (added within version 1: a shim that predates it answers
	// "unknown operation", which a manager reports as not upgradable).
	OpUpgrade = "upgrade"
	// OpMetrics and OpUpdate were added to protocol version 1 without a
	// new version: a shim built before them answers "unknown operation"
	// (CodeInvalid), which clients report as such.
	OpMetrics = "metrics"
	OpUpdate  = "update"
	// OpPids was added to protocol version 1 the same way.
	OpPids = "pids"
	// Added in protocol version 1 by issue 13 (stop, checkpoint); an
	// older shim answers them with CodeInvalid "unknown operation".
	OpStop       = "stop"
	OpCheckpoint = "checkpoint"
)

// Message is one request to a shim: one of the types below.
type Message interface {
	// Op is the operation's name on the wire.
	Op() string
	fill(*Request)
}

// StateReq asks for the container's State; answered even during create.
type StateReq struct{}

// StartReq starts the container's init.
type StartReq struct{}

// KillReq signals init (every process of the container with All) or the
// exec'd process Exec. Signal is 1-64.
type KillReq struct {
	Exec   string
	Signal int
	All    bool
}

// WaitReq waits for the exit of init ("") or of exec'd process Exec;
// answered with Response.Exit once the exit record is durable.
type WaitReq struct{ Exec string }

// DeleteReq removes the container (with Force, a running one too); the
// shim exits after answering.
type DeleteReq struct{ Force bool }

// ExecReq starts exec'd process ID; with Attach the connection then
// streams its IO.
type ExecReq struct {
	ID       string
	Process  specs.Process
	Terminal bool
	Stdin    bool
	Attach   bool
}

// AttachReq streams the live IO of init ("") or of exec'd process Exec.
type AttachReq struct{ Exec string }

// ResizeReq sets the terminal size of init or of an exec'd process.
type ResizeReq struct {
	Exec          string
	Width, Height uint16
}

// CloseStdinReq ends the input of init or of an exec'd process.
type CloseStdinReq struct{ Exec string }

// PauseReq freezes the container; ResumeReq thaws it.
type PauseReq struct{}
type ResumeReq struct{}

// StatsReq asks for the shim's own resource use (Stats); answered even
// during create.
type StatsReq struct{}

// UpgradeReq asks the shim to execve Binary in place, handing the
// container over (see shim.Freeze). The answer, Response.Upgrade, comes
// from the new binary once it serves; a refusal comes from the old one,
// which goes on serving.
type UpgradeReq struct{ Binary string }

func (UpgradeReq) Op() string        { return OpUpgrade }
func (m UpgradeReq) fill(r *Request) { r.Binary = m.Binary }

// MetricsReq asks for the container's resource use and limits, read from
// its cgroups (Response.Metrics).
type MetricsReq struct{}

// PidsReq asks for the host pids of the container's processes (the OCI
// runtime's ps; Response.Pids).
type PidsReq struct{}

// UpdateReq changes the container's limits through the OCI runtime's
// update; only the fields set in Resources change.
type UpdateReq struct{ Resources specs.LinuxResources }

// StopReq stops the container: Signal (0: the bundle's stop signal, or
// SIGTERM), then SIGKILL once Grace has passed; answered with
// Response.Exit once init's exit record is durable. The shim finishes the
// stop even if the client goes away.
type StopReq struct {
	Signal int
	Grace  time.Duration
}

// CheckpointReq dumps the running container with CRIU into ImagePath
// (absolute); WorkPath gets CRIU's log ("" for ImagePath).
type CheckpointReq struct {
	ImagePath    string
	WorkPath     string
	LeaveRunning bool
}

func (StopReq) Op() string       { return OpStop }
func (CheckpointReq) Op() string { return OpCheckpoint }
func (m StopReq) fill(r *Request) {
	r.Signal, r.GraceMS = m.Signal, m.Grace.Milliseconds()
}
func (m CheckpointReq) fill(r *Request) {
	r.ImagePath, r.WorkPath, r.LeaveRunning = m.ImagePath, m.WorkPath, m.LeaveRunning
}

func (StateReq) Op() string      { return OpState }
func (StartReq) Op() string      { return OpStart }
func (KillReq) Op() string       { return OpKill }
func (WaitReq) Op() string       { return OpWait }
func (DeleteReq) Op() string     { return OpDelete }
func (ExecReq) Op() string       { return OpExec }
func (AttachReq) Op() string     { return OpAttach }
func (ResizeReq) Op() string     { return OpResize }
func (CloseStdinReq) Op() string { return OpCloseStdin }
func (PauseReq) Op() string      { return OpPause }
func (ResumeReq) Op() string     { return OpResume }
func (StatsReq) Op() string      { return OpStats }
func (MetricsReq) Op() string    { return OpMetrics }
func (UpdateReq) Op() string     { return OpUpdate }
func (PidsReq) Op() string       { return OpPids }

func (StateReq) fill(*Request)          {}
func (StartReq) fill(*Request)          {}
func (m KillReq) fill(r *Request)       { r.Exec, r.Signal, r.All = m.Exec, m.Signal, m.All }
func (m WaitReq) fill(r *Request)       { r.Exec = m.Exec }
func (m DeleteReq) fill(r *Request)     { r.Force = m.Force }
func (m AttachReq) fill(r *Request)     { r.Exec = m.Exec }
func (m ResizeReq) fill(r *Request)     { r.Exec, r.Width, r.Height = m.Exec, m.Width, m.Height }
func (m CloseStdinReq) fill(r *Request) { r.Exec = m.Exec }
func (PauseReq) fill(*Request)          {}
func (ResumeReq) fill(*Request)         {}
func (StatsReq) fill(*Request)          {}
func (MetricsReq) fill(*Request)        {}
func (PidsReq) fill(*Request)           {}
func (m UpdateReq) fill(r *Request) {
	res := m.Resources
	r.Resources = &res
}
func (m ExecReq) fill(r *Request) {
	p := m.Process
	r.Exec, r.Process, r.Terminal, r.Stdin, r.Attach = m.ID, &p, m.Terminal, m.Stdin, m.Attach
}

// Request is the envelope of every message on the wire: one flat JSON
// object (version 1's form, kept so every shipped peer reads it). Build it
// with NewRequest and take the message out with Message.
type Request struct {
	Version  int            `json:"v"`
	Op       string         `json:"op"`
	Exec     string         `json:"exec,omitempty"`
	Signal   int            `json:"signal,omitempty"`
	All      bool           `json:"all,omitempty"`
	Force    bool           `json:"force,omitempty"`
	Process  *specs.Process `json:"process,omitempty"`
	Terminal bool           `json:"terminal,omitempty"`
	Stdin    bool           `json:"stdin,omitempty"`
	Attach   bool           `json:"attach,omitempty"`
	Width    uint16         `json:"width,omitempty"`
	Height   uint16         `json:"height,omitempty"`
	Binary   string         `json:"binary,omitempty"`
	// Resources is UpdateReq's.
	Resources *specs.LinuxResources `json:"resources,omitempty"`
	// stop and checkpoint (issue 13)
	GraceMS      int64  `json:"grace_ms,omitempty"`
	ImagePath    string `json:"image_path,omitempty"`
	WorkPath     string `json:"work_path,omitempty"`
	LeaveRunning bool   `json:"leave_running,omitempty"`
}

// NewRequest wraps m in an envelope of protocol version v.
func NewRequest(v int, m Message) *Request {
	r := &Request{Version: v, Op: m.Op()}
	m.fill(r)
	return r
}

// maxSignal is the highest signal number Linux has (SIGRTMAX).
const maxSignal = 64

// Message validates the envelope and returns its message: a version this
// build serves, a known operation, a well-formed exec ID and a signal in
// range. The error wraps errdefs.ErrInvalid (and ErrVersion for a version
// outside MinVersion..Version) and is one line.
func (r *Request) Message() (Message, error) {
	if r.Version < MinVersion || r.Version > Version {
		return nil, fmt.Errorf("%w (%w): protocol version %d, this shim speaks %d to %d",
			errdefs.ErrVersion, errdefs.ErrInvalid, r.Version, MinVersion, Version)
	}
	if r.Exec != "" {
		if err := ids.ValidID(r.Exec); err != nil {
			return nil, fmt.Errorf("exec %w", err)
		}
	}
	switch r.Op {
	case OpState:
		return StateReq{}, nil
	case OpStart:
		return StartReq{}, nil
	case OpKill:
		if r.Signal <= 0 || r.Signal > maxSignal {
			return nil, fmt.Errorf("%w: signal %d is out of range 1-%d", errdefs.ErrInvalid, r.Signal, maxSignal)
		}
		return KillReq{Exec: r.Exec, Signal: r.Signal, All: r.All}, nil
	case OpWait:
		return WaitReq{Exec: r.Exec}, nil
	case OpDelete:
		return DeleteReq{Force: r.Force}, nil
	case OpExec:
		if r.Process == nil || len(r.Process.Args) == 0 {
			return nil, fmt.Errorf("%w: exec needs a command", errdefs.ErrInvalid)
		}
		return ExecReq{ID: r.Exec, Process: *r.Process, Terminal: r.Terminal, Stdin: r.Stdin, Attach: r.Attach}, nil
	case OpAttach:
		return AttachReq{Exec: r.Exec}, nil
	case OpResize:
		return ResizeReq{Exec: r.Exec, Width: r.Width, Height: r.Height}, nil
	case OpCloseStdin:
		return CloseStdinReq{Exec: r.Exec}, nil
	case OpPause:
		return PauseReq{}, nil
	case OpResume:
		return ResumeReq{}, nil
	case OpStats:
		return StatsReq{}, nil
	case OpUpgrade:
		if !strings.HasPrefix(r.Binary, "/") {
			return nil, fmt.Errorf("%w: upgrade needs the new shim binary's absolute path, got %q", errdefs.ErrInvalid, r.Binary)
		}
		return UpgradeReq{Binary: r.Binary}, nil
	case OpMetrics:
		return MetricsReq{}, nil
	case OpPids:
		return PidsReq{}, nil
	case OpUpdate:
		if r.Resources == nil {
			return nil, fmt.Errorf("%w: update needs resources", errdefs.ErrInvalid)
		}
		return UpdateReq{Resources: *r.Resources}, nil
	case OpStop:
		if r.Signal < 0 || r.Signal > maxSignal || r.GraceMS < 0 {
			return nil, fmt.Errorf("%w: stop signal %d or grace %d ms out of range", errdefs.ErrInvalid, r.Signal, r.GraceMS)
		}
		return StopReq{Signal: r.Signal, Grace: time.Duration(r.GraceMS) * time.Millisecond}, nil
	case OpCheckpoint:
		if !filepath.IsAbs(r.ImagePath) || (r.WorkPath != "" && !filepath.IsAbs(r.WorkPath)) {
			return nil, fmt.Errorf("%w: checkpoint image path %q must be absolute", errdefs.ErrInvalid, r.ImagePath)
		}
		return CheckpointReq{ImagePath: r.ImagePath, WorkPath: r.WorkPath, LeaveRunning: r.LeaveRunning}, nil
	}
	return nil, fmt.Errorf("%w: unknown operation %q", errdefs.ErrInvalid, r.Op)
}

// Validate is Message without the message.
func (r *Request) Validate() error {
	_, err := r.Message()
	return err
}

// Response answers one Request. Error is empty on success; Code then
// says which sentinel it stands for (see ErrorOf).
type Response struct {
	Version int    `json:"v"`
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"`
	State   *State `json:"state,omitempty"`
	Exit    *Exit  `json:"exit,omitempty"`
	Stats   *Stats `json:"stats,omitempty"`
	// Metrics answers MetricsReq.
	Metrics *cgroups.Stats `json:"metrics,omitempty"`
	// Pids answers PidsReq (host pids; empty when the container has no
	// process left).
	Pids []int `json:"pids,omitempty"`
	// Upgrade answers OpUpgrade: the binary before and after.
	Upgrade *Upgrade `json:"upgrade,omitempty"`
}

// Upgrade says which shim binary served before an in-place upgrade and
// which serves now, in the same process.
type Upgrade struct {
	Pid  int   `json:"pid"`
	From Build `json:"from"`
	To   Build `json:"to"`
}

// Build names a shim binary: its path and its version (the VCS revision
// it was built from, "-dirty" when modified; "unknown" when not stamped).
type Build struct {
	Binary  string `json:"binary"`
	Version string `json:"version"`
}

// Status values of a container or process on the wire.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusPaused  = "paused"
	StatusStopped = "stopped"
	StatusUnknown = "unknown"
	// StatusCreating is answered while the shim is still running the OCI
	// runtime's create: the container is not usable yet.
	StatusCreating = "creating"
)

// State describes a container (or, in Execs, its exec'd processes) as a
// shim reports it. ExitStatus and ExitedAt are set once it has stopped.
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
	// OOMKilled and OOMKills come from init's exit record.
	OOMKilled bool   `json:"oom_killed,omitempty"`
	OOMKills  uint64 `json:"oom_kills,omitempty"`
	// AdoptedAt is when the serving shim took the container over from a
	// shim that died.
	AdoptedAt *time.Time  `json:"adopted_at,omitempty"`
	Execs     []ExecState `json:"execs,omitempty"`
}

// ExecState describes one exec'd process.
type ExecState struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	Pid        int        `json:"pid"`
	ExitStatus *int       `json:"exit_status,omitempty"`
	ExitedAt   *time.Time `json:"exited_at,omitempty"`
	Reason     string     `json:"reason,omitempty"`
}

// Exit is the end of a process (Response.Exit, and the FrameExit payload).
// Version 1 shims also send the exit record's "version" field; it is
// ignored.
type Exit struct {
	Pid      int       `json:"pid"`
	Status   int       `json:"status"`
	ExitedAt time.Time `json:"exited_at"`
	Reason   string    `json:"reason,omitempty"`
	// OOMKilled and OOMKills: see store.ExitRecord (init only).
	OOMKilled bool   `json:"oom_killed,omitempty"`
	OOMKills  uint64 `json:"oom_kills,omitempty"`
}

// Stats is the shim's own resource use.
type Stats struct {
	Goroutines int `json:"goroutines"`
	// FDs is the number of open file descriptors of the shim process.
	FDs int `json:"fds"`
	// Conns is the number of control connections open, this one included.
	Conns int `json:"conns"`
	// Pending is how many of them have not sent their request yet.
	Pending int `json:"pending"`
}

// Ready is the one JSON line a new shim writes to its ready pipe (fd 3)
// once the container is created (or adopted), or creation failed.
type Ready struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
	// AutoRemove: the shim read the record's auto_remove and will remove
	// the container once init has exited. Added within version 1: a shim
	// that predates auto-remove never sets it, so a manager that asked for
	// it knows the shim would leave the container behind.
	AutoRemove bool `json:"auto_remove,omitempty"`
}

// NewReady is the ready message for a created init pid, or for err.
func NewReady(pid int, err error) Ready {
	if err != nil {
		return Ready{Error: err.Error(), Code: CodeOf(err)}
	}
	return Ready{Pid: pid}
}

// Err is the error a failed Ready reports (a *RemoteError), or nil.
func (r Ready) Err() error {
	if r.Error == "" {
		return nil
	}
	return &RemoteError{Msg: r.Error, Err: ErrorOf(r.Code)}
}

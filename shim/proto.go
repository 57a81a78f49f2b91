package shim

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The control protocol: one request per connection. The client writes one
// JSON Request and a newline; the shim answers one JSON Response and a
// newline. For the streaming operations (attach, and exec with Attach) the
// connection then carries frames in both directions: a kind byte, a 4-byte
// big-endian length and the payload.

// Operations.
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
	// OpStats reports the shim's own resource use (Stats): goroutines,
	// open fds and connections, for leak checks and debugging.
	OpStats = "stats"
)

// Limits of the protocol; a peer that passes them gets an error reply and
// the connection is closed.
const (
	MaxRequestSize = 1 << 20
	MaxFrameSize   = 1 << 20
)

// Request is one call to the shim. Exec names an exec'd process; empty means
// the container's init.
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
}

// Error codes carried in Response.Code; the client turns them back into the
// sentinel errors of this package.
const (
	CodeNotFound   = "not_found"
	CodeExists     = "exists"
	CodeNotRunning = "not_running"
	CodeRunning    = "running"
	CodeInvalid    = "invalid"
	CodeFailed     = "failed"
	// CodeNoCommand and CodeNoExec: the process's executable was not
	// found, or cannot be run (create or exec).
	CodeNoCommand = "command_not_found"
	CodeNoExec    = "command_not_executable"
)

// Response answers one Request. Error is empty on success.
type Response struct {
	Version int         `json:"v"`
	Error   string      `json:"error,omitempty"`
	Code    string      `json:"code,omitempty"`
	State   *State      `json:"state,omitempty"`
	Exit    *ExitRecord `json:"exit,omitempty"`
	Stats   *Stats      `json:"stats,omitempty"`
}

// Status values of a container or process, as the CLI prints them.
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

// State describes a container (or, in Execs, its exec'd processes).
// ExitStatus and ExitedAt are set once it has stopped.
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
	// AdoptedAt is when the serving shim took the container over from a
	// shim that died (see Adopt): output written before then and while no
	// shim ran may be missing from the log, and stdin is not kept.
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
	// Reason says why the exit status is not the process's own doing (for
	// example ReasonInitExited); empty otherwise.
	Reason string `json:"reason,omitempty"`
}

// Stats is the shim's own resource use, as OpStats reports it.
type Stats struct {
	Goroutines int `json:"goroutines"`
	// FDs is the number of open file descriptors of the shim process.
	FDs int `json:"fds"`
	// Conns is the number of control connections open, this one included.
	Conns int `json:"conns"`
	// Pending is how many of them have not sent their request yet.
	Pending int `json:"pending"`
}

// Frame kinds on a streaming connection.
const (
	FrameStdout     byte = 1 // shim -> client: output
	FrameStderr     byte = 2 // shim -> client: output
	FrameExit       byte = 3 // shim -> client: JSON ExitRecord, last frame
	FrameStdin      byte = 4 // client -> shim: input
	FrameCloseStdin byte = 5 // client -> shim: end of input
	FrameResize     byte = 6 // client -> shim: width, height as two uint16
)

var errTooLarge = errors.New("message too large")

// ReadMessage reads one newline-terminated JSON value of at most
// MaxRequestSize bytes into v.
func ReadMessage(r *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxRequestSize {
			return errTooLarge
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if err == io.EOF && len(line) > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("malformed message: %w", err)
	}
	return nil
}

// WriteMessage writes v as one JSON line.
func WriteMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind byte, p []byte) error {
	if len(p) > MaxFrameSize {
		return errTooLarge
	}
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// ReadFrame reads one frame, refusing payloads over MaxFrameSize.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrameSize {
		return 0, nil, errTooLarge
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return hdr[0], buf, nil
}

// knownOps lists the operations a shim serves.
var knownOps = map[string]bool{OpState: true, OpStart: true, OpKill: true, OpWait: true,
	OpDelete: true, OpExec: true, OpAttach: true, OpResize: true, OpCloseStdin: true,
	OpPause: true, OpResume: true, OpStats: true}

// Validate checks what can be checked of a request without the shim's
// state: the protocol version, a known operation, a well-formed exec ID
// and a signal in range. The error wraps ErrInvalid, or ErrVersion for
// another protocol version, and is one line.
func (r *Request) Validate() error {
	if r.Version != SchemaVersion {
		return fmt.Errorf("%w (%w): protocol version %d, this shim speaks %d", ErrVersion, ErrInvalid, r.Version, SchemaVersion)
	}
	if !knownOps[r.Op] {
		return fmt.Errorf("%w: unknown operation %q", ErrInvalid, r.Op)
	}
	if r.Exec != "" {
		if err := ValidID(r.Exec); err != nil {
			return fmt.Errorf("exec %w", err)
		}
	}
	if r.Op == OpKill && (r.Signal <= 0 || r.Signal > maxSignal) {
		return fmt.Errorf("%w: signal %d is out of range 1-%d", ErrInvalid, r.Signal, maxSignal)
	}
	if r.Op == OpExec && (r.Process == nil || len(r.Process.Args) == 0) {
		return fmt.Errorf("%w: exec needs a command", ErrInvalid)
	}
	return nil
}

// maxSignal is the highest signal number Linux has (SIGRTMAX).
const maxSignal = 64

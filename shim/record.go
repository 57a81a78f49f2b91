package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tether-run/tether/internal/atomicfile"
	"github.com/tether-run/tether/internal/proc"
)

// SchemaVersion is the version of every record this package writes and of
// the control protocol. A reader meeting another version refuses it with
// ErrVersion instead of guessing.
const SchemaVersion = 1

// Names of the files in a container's state folder. The README lists them.
const (
	RecordFile    = "container.json" // Record, written by the manager at create
	ShimPidFile   = "shim.pid"       // PidRecord of the shim
	InitPidFile   = "init.pid"       // PidRecord of the container's init
	ExitFile      = "exit.json"      // ExitRecord of init
	SocketFile    = "shim.sock"      // control socket, mode 0600
	OutputLogFile = "output.log"     // CRI-format output, rotated to output.log.N
	ShimLogFile   = "shim.log"       // the shim's own JSON log
	RuntimePidRaw = "runtime.pid"    // pid file the OCI runtime writes
	ExecDir       = "exec"           // one set of files per exec'd process
)

// Errors returned by the record readers (use errors.Is).
var (
	// ErrVersion: the record or peer speaks a schema this build does not know.
	ErrVersion = errors.New("unsupported schema version")
	// ErrCorrupt: the record exists but cannot be parsed.
	ErrCorrupt = errors.New("corrupt record")
)

// Record is what the manager knows of a container, written once at create.
type Record struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	Bundle      string    `json:"bundle"`
	Runtime     string    `json:"runtime"`      // binary name or path
	RuntimeRoot string    `json:"runtime_root"` // --root given to it
	RuntimeArgs []string  `json:"runtime_args,omitempty"`
	Terminal    bool      `json:"terminal,omitempty"`
	Stdin       bool      `json:"stdin,omitempty"`
	LogMaxSize  int64     `json:"log_max_size,omitempty"`  // bytes; 0 never rotates
	LogMaxFiles int       `json:"log_max_files,omitempty"` // rotated files kept
	CreatedAt   time.Time `json:"created_at"`
	BootID      string    `json:"boot_id"`
}

// PidRecord names a process with enough identity that a reused pid is never
// taken for it.
type PidRecord struct {
	Version int `json:"version"`
	proc.Identity
}

// ExitRecord is the true end of a process, written by the shim before it
// tells anyone. Status is the exit code, or 128+N after signal N.
type ExitRecord struct {
	Version  int       `json:"version"`
	Pid      int       `json:"pid"`
	Status   int       `json:"status"`
	ExitedAt time.Time `json:"exited_at"`
	// Reason is empty for a status the shim saw itself; otherwise it says
	// why the status is not the process's own (for example the shim died).
	Reason string `json:"reason,omitempty"`
}

// WriteJSON writes v to dir/name atomically with mode 0600.
func WriteJSON(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o600)
}

// versioned lets readers check the version before trusting the rest.
type versioned struct {
	Version int `json:"version"`
}

// ReadJSON reads dir/name into v. A missing file gives an error satisfying
// errors.Is(err, os.ErrNotExist); bad JSON gives ErrCorrupt; a version other
// than SchemaVersion gives ErrVersion.
func ReadJSON(dir, name string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	return decodeRecord(name, b, v)
}

func decodeRecord(name string, b []byte, v any) error {
	var ver versioned
	if err := json.Unmarshal(b, &ver); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrCorrupt, err)
	}
	if ver.Version != SchemaVersion {
		return fmt.Errorf("%s: %w %d (this build reads %d)", name, ErrVersion, ver.Version, SchemaVersion)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrCorrupt, err)
	}
	return nil
}

// ReadRecord reads the container record in dir and checks it names a
// container.
func ReadRecord(dir string) (*Record, error) {
	var r Record
	if err := ReadJSON(dir, RecordFile, &r); err != nil {
		return nil, err
	}
	if r.ID == "" || r.Bundle == "" || r.Runtime == "" {
		return nil, fmt.Errorf("%s: %w: id, bundle or runtime missing", RecordFile, ErrCorrupt)
	}
	return &r, nil
}

// ReadPid reads a PidRecord.
func ReadPid(dir, name string) (proc.Identity, error) {
	var r PidRecord
	if err := ReadJSON(dir, name, &r); err != nil {
		return proc.Identity{}, err
	}
	if r.Pid <= 0 {
		return proc.Identity{}, fmt.Errorf("%s: %w: pid %d", name, ErrCorrupt, r.Pid)
	}
	return r.Identity, nil
}

// WritePid records the identity of pid in dir/name.
func WritePid(dir, name string, pid int) (proc.Identity, error) {
	id, err := proc.Identify(pid)
	if err != nil {
		return id, fmt.Errorf("identify pid %d: %w", pid, err)
	}
	return id, WriteJSON(dir, name, PidRecord{Version: SchemaVersion, Identity: id})
}

// ReadExit reads an ExitRecord; a missing file satisfies os.ErrNotExist.
func ReadExit(dir, name string) (*ExitRecord, error) {
	var e ExitRecord
	if err := ReadJSON(dir, name, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

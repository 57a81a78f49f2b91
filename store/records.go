package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
)

// Record is what the manager knows of a container, written once at create
// (by the manager, or by whichever front end asks a shim core to create).
type Record struct {
	Version     int      `json:"version"`
	ID          string   `json:"id"`
	Bundle      string   `json:"bundle"`
	Runtime     string   `json:"runtime"`      // binary name or path
	RuntimeRoot string   `json:"runtime_root"` // --root given to it
	RuntimeArgs []string `json:"runtime_args,omitempty"`
	Terminal    bool     `json:"terminal,omitempty"`
	Stdin       bool     `json:"stdin,omitempty"`
	LogMaxSize  int64    `json:"log_max_size,omitempty"`  // bytes; 0 never rotates
	LogMaxFiles int      `json:"log_max_files,omitempty"` // rotated files kept
	// RuntimeTimeoutMS bounds each call of the OCI runtime the shim makes,
	// in milliseconds; 0 means oci.DefaultTimeout (60 s). Clients derive
	// their own deadlines from it.
	RuntimeTimeoutMS int64     `json:"runtime_timeout_ms,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	BootID           string    `json:"boot_id"`
	// RestoredFrom, when set, is the absolute folder of a checkpoint: the
	// shim makes init with the runtime's restore from it instead of
	// create, and init runs at once.
	RestoredFrom string `json:"restored_from,omitempty"`
	// AutoRemove asks the shim to remove the container once init has
	// exited: after the exit record is durable and journaled and the
	// waiters of that moment are answered, it deletes the runtime's
	// container and the folder, journals deleted and exits (docker's
	// --rm). A manager that finds such a container stopped with its shim
	// gone finishes the removal. An optional field of version 1: readers
	// that predate it ignore it (the container then stays, stopped).
	AutoRemove bool `json:"auto_remove,omitempty"`
}

// RuntimeTimeout is the bound of one runtime call, 0 for the default.
func (r *Record) RuntimeTimeout() time.Duration {
	return time.Duration(r.RuntimeTimeoutMS) * time.Millisecond
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
	// OOMKilled says the kernel's OOM killer killed a process of the
	// container (init or another) while it ran; OOMKills is how many
	// (the cgroup's oom_kill counter when init exited). Absent in records
	// written before this field existed and by shims that could not read
	// the container's cgroup.
	OOMKilled bool   `json:"oom_killed,omitempty"`
	OOMKills  uint64 `json:"oom_kills,omitempty"`
}

// UnknownStatus is the exit status recorded or reported when the true one
// cannot be known. It is never 0.
const UnknownStatus = 255

// maxPid is the kernel's largest pid_max (PID_MAX_LIMIT on 64-bit).
const maxPid = 1 << 22

// versioned lets readers check the version before trusting the rest.
type versioned struct {
	Version int `json:"version"`
}

// decode checks the version, then decodes b into v.
func decode(name string, b []byte, v any) error {
	var ver versioned
	if err := json.Unmarshal(b, &ver); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrCorrupt, err)
	}
	if ver.Version < MinVersion || ver.Version > Version {
		return versionError(name, ver.Version)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrCorrupt, err)
	}
	return nil
}

// ParseRecord decodes and checks a container record: a version this build
// reads, a valid ID, an absolute bundle, a runtime, and no negative limit.
// Errors wrap ErrCorrupt or ErrVersion and are one line.
func ParseRecord(b []byte) (*Record, error) {
	var r Record
	if err := decode(recordFile, b, &r); err != nil {
		return nil, err
	}
	switch {
	case r.ID == "" || r.Bundle == "" || r.Runtime == "":
		return nil, fmt.Errorf("%s: %w: id, bundle or runtime missing", recordFile, ErrCorrupt)
	case ids.ValidID(r.ID) != nil:
		return nil, fmt.Errorf("%s: %w: id %q", recordFile, ErrCorrupt, r.ID)
	case !filepath.IsAbs(r.Bundle) || (r.RuntimeRoot != "" && !filepath.IsAbs(r.RuntimeRoot)) ||
		(r.RestoredFrom != "" && !filepath.IsAbs(r.RestoredFrom)):
		return nil, fmt.Errorf("%s: %w: bundle, runtime_root and restored_from must be absolute", recordFile, ErrCorrupt)
	case r.LogMaxSize < 0 || r.LogMaxFiles < 0 || r.RuntimeTimeoutMS < 0:
		return nil, fmt.Errorf("%s: %w: negative limit", recordFile, ErrCorrupt)
	}
	return &r, nil
}

// ParsePid decodes a pid record named name and checks its pid is a
// possible one.
func ParsePid(name string, b []byte) (proc.Identity, error) {
	var r PidRecord
	if err := decode(name, b, &r); err != nil {
		return proc.Identity{}, err
	}
	if r.Pid <= 0 || r.Pid > maxPid {
		return proc.Identity{}, fmt.Errorf("%s: %w: pid %d", name, ErrCorrupt, r.Pid)
	}
	return r.Identity, nil
}

// ParseExit decodes an exit record named name and checks its status is
// one a process can end with (0-255) and its pid is possible.
func ParseExit(name string, b []byte) (*ExitRecord, error) {
	var e ExitRecord
	if err := decode(name, b, &e); err != nil {
		return nil, err
	}
	if e.Status < 0 || e.Status > 255 || e.Pid < 0 || e.Pid > maxPid {
		return nil, fmt.Errorf("%s: %w: pid %d, status %d", name, ErrCorrupt, e.Pid, e.Status)
	}
	return &e, nil
}

func readPid(dir, name string) (proc.Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return proc.Identity{}, err
	}
	return ParsePid(name, b)
}

func readExit(dir, name string) (*ExitRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	return ParseExit(name, b)
}

// writePid identifies pid and writes its pid record (volatile).
func writePid(dir, name string, pid int) (proc.Identity, error) {
	id, err := proc.Identify(pid)
	if err != nil {
		return id, fmt.Errorf("identify pid %d: %w", pid, err)
	}
	return id, writeVolatile(dir, name, PidRecord{Version: Version, Identity: id})
}

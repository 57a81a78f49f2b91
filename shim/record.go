package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/atomicfile"
	"github.com/tether-run/tether/internal/proc"
	"golang.org/x/sys/unix"
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
	// in milliseconds; 0 means oci.DefaultTimeout (60 s).
	RuntimeTimeoutMS int64     `json:"runtime_timeout_ms,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	BootID           string    `json:"boot_id"`
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
	b, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if err != nil {
		return nil, err
	}
	return parseRecord(b)
}

// parseRecord decodes and checks a container record: a valid ID, an
// absolute bundle, a runtime, and no negative limit.
func parseRecord(b []byte) (*Record, error) {
	var r Record
	if err := decodeRecord(RecordFile, b, &r); err != nil {
		return nil, err
	}
	switch {
	case r.ID == "" || r.Bundle == "" || r.Runtime == "":
		return nil, fmt.Errorf("%s: %w: id, bundle or runtime missing", RecordFile, ErrCorrupt)
	case ValidID(r.ID) != nil:
		return nil, fmt.Errorf("%s: %w: id %q", RecordFile, ErrCorrupt, r.ID)
	case !filepath.IsAbs(r.Bundle) || (r.RuntimeRoot != "" && !filepath.IsAbs(r.RuntimeRoot)):
		return nil, fmt.Errorf("%s: %w: bundle and runtime_root must be absolute", RecordFile, ErrCorrupt)
	case r.LogMaxSize < 0 || r.LogMaxFiles < 0 || r.RuntimeTimeoutMS < 0:
		return nil, fmt.Errorf("%s: %w: negative limit", RecordFile, ErrCorrupt)
	}
	return &r, nil
}

// maxPid is the kernel's largest pid_max (PID_MAX_LIMIT on 64-bit).
const maxPid = 1 << 22

// ReadPid reads a PidRecord.
func ReadPid(dir, name string) (proc.Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return proc.Identity{}, err
	}
	return parsePid(name, b)
}

// parsePid decodes a PidRecord and checks its pid is a possible one.
func parsePid(name string, b []byte) (proc.Identity, error) {
	var r PidRecord
	if err := decodeRecord(name, b, &r); err != nil {
		return proc.Identity{}, err
	}
	if r.Pid <= 0 || r.Pid > maxPid {
		return proc.Identity{}, fmt.Errorf("%s: %w: pid %d", name, ErrCorrupt, r.Pid)
	}
	return r.Identity, nil
}

// WritePid records the identity of pid in dir/name: atomically (a reader
// sees the whole record or none) but without fsync. An identity means
// something only during the boot it was taken in: after a crash of the
// machine every process it could name is gone and the boot id says so, so
// syncing it would only slow every create and exec. Exit records, which
// must outlive a crash, are written durably (WriteJSON).
func WritePid(dir, name string, pid int) (proc.Identity, error) {
	id, err := proc.Identify(pid)
	if err != nil {
		return id, fmt.Errorf("identify pid %d: %w", pid, err)
	}
	return id, writeVolatile(dir, name, PidRecord{Version: SchemaVersion, Identity: id})
}

// ReadExit reads an ExitRecord; a missing file satisfies os.ErrNotExist.
func ReadExit(dir, name string) (*ExitRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	return parseExit(name, b)
}

// parseExit decodes an ExitRecord and checks its status is one a process
// can end with (0-255) and its pid is not negative.
func parseExit(name string, b []byte) (*ExitRecord, error) {
	var e ExitRecord
	if err := decodeRecord(name, b, &e); err != nil {
		return nil, err
	}
	if e.Status < 0 || e.Status > 255 || e.Pid < 0 || e.Pid > maxPid {
		return nil, fmt.Errorf("%s: %w: pid %d, status %d", name, ErrCorrupt, e.Pid, e.Status)
	}
	return &e, nil
}

// reserveSuffix names the file that holds room for a process's exit
// record, so the record can still be written once the filesystem is full
// (of the container's own log, most likely).
const reserveSuffix = ".reserve"

// reserveSize is the room set aside; an exit record is a few hundred bytes.
const reserveSize = 4096

// reserveExit sets aside reserveSize allocated bytes for the exit record
// dir/name. Failing to reserve is not fatal: writeExit then writes the
// usual way.
func reserveExit(dir, name string) error {
	f, err := os.OpenFile(filepath.Join(dir, name+reserveSuffix),
		os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, reserveSize); err == nil {
		return nil
	}
	_, err = f.Write(make([]byte, reserveSize)) // no fallocate on this filesystem
	return err
}

// writeExit writes an exit record durably. With room reserved by
// reserveExit, the record is written into that already allocated file,
// which is then renamed into place, so it needs no new space; otherwise,
// or if that fails, it is written like any record (after the reserve is
// removed, which frees its room).
func writeExit(dir, name string, rec *ExitRecord) error {
	res := filepath.Join(dir, name+reserveSuffix)
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	b = append(b, '\n')
	if err := writeReserved(res, filepath.Join(dir, name), b); err == nil {
		return atomicfile.SyncDir(dir)
	}
	os.Remove(res)
	return WriteJSON(dir, name, rec)
}

// writeReserved puts b at the start of the reserve file res, cuts the file
// to len(b), syncs it and renames it to path.
func writeReserved(res, path string, b []byte) error {
	if len(b) > reserveSize {
		return errTooLarge
	}
	f, err := os.OpenFile(res, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Truncate(int64(len(b)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(res, path)
}

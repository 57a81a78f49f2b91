// Package store owns the on-disk contract of a runtime root: the layout of
// a container's folder (its records, its logs, its socket, exec/), every
// record type and its format version, how each is written (durable or
// volatile), the room reserved for exit records, the folder's lock, and
// the enumeration of exec'd processes. No other package builds a path in a
// container folder by hand: they ask a Folder or a Proc.
//
// It decides nothing about what a set of records means (that is
// internal/restore) and talks to no process.
//
// Versions: every record carries "version". A reader accepts its own
// Version and every older one it has shipped (MinVersion up); a newer one
// is refused with an error wrapping errdefs.ErrVersion that says so, and
// the caller leaves that container alone. Writers always write Version.
// Records of every shipped version are kept under testdata/ and decoded by
// a test forever.
package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
)

// Version is the record format this build writes; MinVersion the oldest
// it reads. Version 1 shipped first (commit 3911370 and before).
const (
	Version    = 1
	MinVersion = 1
)

// Errors of the record readers (errors.Is). They are the shared sentinels.
var (
	ErrVersion = errdefs.ErrVersion
	ErrCorrupt = errdefs.ErrCorrupt
)

// Names of the files in a container's folder. The README lists them.
const (
	recordFile    = "container.json" // Record, written by the manager at create
	shimPidFile   = "shim.pid"       // PidRecord of the shim
	initPidFile   = "init.pid"       // PidRecord of the container's init
	exitFile      = "exit.json"      // ExitRecord of init
	socketFile    = "shim.sock"      // control socket, mode 0600
	outputLogFile = "output.log"     // CRI-format output, rotated to output.log.N
	shimLogFile   = "shim.log"       // the shim's own JSON log
	runtimePidRaw = "runtime.pid"    // pid file the OCI runtime writes
	lockFile      = "lock"           // the folder's flock
	execDir       = "exec"           // one set of files per exec'd process
	bundleDir     = "bundle"         // a bundle written for the container (runtime.CreateOpts.WriteBundle)
	reserveSuffix = ".reserve"       // room set aside for an exit record
	criuDir       = "criu"           // CRIU's work folder of a restore (restore.log)
)

// Folder is one container's folder, ROOT/ID. It is a name only: making it
// does no IO, and every method reads or writes the disk afresh.
type Folder struct {
	root, id, dir string
}

// Open returns the folder of container id under root (no IO). id must be
// valid (ids.ValidID); an invalid one gives an error wrapping ErrInvalid.
func Open(root, id string) (*Folder, error) {
	if err := ids.ValidID(id); err != nil {
		return nil, err
	}
	return &Folder{root: root, id: id, dir: filepath.Join(root, id)}, nil
}

// At is Open for a folder whose ID is already known to be valid (it was
// checked, or read from a record that was checked).
func At(root, id string) *Folder {
	return &Folder{root: root, id: id, dir: filepath.Join(root, id)}
}

// ID is the container's ID; Root the runtime root; Dir the folder's path.
func (f *Folder) ID() string   { return f.id }
func (f *Folder) Root() string { return f.root }
func (f *Folder) Dir() string  { return f.dir }

// Make creates the folder (mode 0700), the root too (0711) if missing. A
// folder that exists gives an error satisfying errors.Is(err,
// os.ErrExist).
func (f *Folder) Make() error {
	if err := os.MkdirAll(f.root, 0o711); err != nil {
		return err
	}
	return os.Mkdir(f.dir, 0o700)
}

// Restore makes the folder again after it was removed under a running
// shim; an existing folder is fine.
func (f *Folder) Restore() error {
	if err := os.MkdirAll(f.root, 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(f.dir, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	return nil
}

// Exists reports whether the folder is there; an error other than "not
// there" is returned as is.
func (f *Folder) Exists() (bool, error) {
	_, err := os.Stat(f.dir)
	if os.IsNotExist(err) {
		return false, nil
	}
	return err == nil, err
}

// Remove deletes the folder and everything in it.
func (f *Folder) Remove() error { return os.RemoveAll(f.dir) }

// SocketPath is the shim's control socket.
func (f *Folder) SocketPath() string { return filepath.Join(f.dir, socketFile) }

// BundleDir is where a bundle written for the container lives, removed
// with the folder.
func (f *Folder) BundleDir() string { return filepath.Join(f.dir, bundleDir) }

// CRIUWorkDir is CRIU's work folder when the container is restored from
// a checkpoint: its restore.log stays there.
func (f *Folder) CRIUWorkDir() string { return filepath.Join(f.dir, criuDir) }

// ShimLogPath is the shim's own log.
func (f *Folder) ShimLogPath() string { return filepath.Join(f.dir, shimLogFile) }

// HasRecord reports whether the container record exists (it may still be
// unreadable).
func (f *Folder) HasRecord() bool {
	_, err := os.Stat(filepath.Join(f.dir, recordFile))
	return err == nil
}

// ReadRecord reads and checks the container record. A missing one gives an
// error satisfying os.ErrNotExist; see ParseRecord for the rest.
func (f *Folder) ReadRecord() (*Record, error) {
	b, err := os.ReadFile(filepath.Join(f.dir, recordFile))
	if err != nil {
		return nil, err
	}
	return ParseRecord(b)
}

// WriteRecord writes the container record durably (temp file, fsync,
// rename, folder fsync), with Version set.
func (f *Folder) WriteRecord(r *Record) error {
	r.Version = Version
	return writeDurable(f.dir, recordFile, r)
}

// ReadShimPid reads the shim's pid record.
func (f *Folder) ReadShimPid() (proc.Identity, error) { return readPid(f.dir, shimPidFile) }

// WriteShimPid records the identity of pid as the shim's (volatile: see
// WritePid).
func (f *Folder) WriteShimPid(pid int) (proc.Identity, error) {
	return writePid(f.dir, shimPidFile, pid)
}

// PutShimPid writes a known identity back as the shim's pid record.
func (f *Folder) PutShimPid(id proc.Identity) error {
	return writeVolatile(f.dir, shimPidFile, PidRecord{Version: Version, Identity: id})
}

// RuntimePidFile is the plain pid file the OCI runtime writes at create.
func (f *Folder) RuntimePidFile() string { return filepath.Join(f.dir, runtimePidRaw) }

// LockPath is the folder's lock file (see Lock).
func (f *Folder) lockPath() string { return filepath.Join(f.dir, lockFile) }

// Init returns the files of the container's init.
func (f *Folder) Init() Proc {
	return Proc{dir: f.dir, pidName: initPidFile, exitName: exitFile, logName: outputLogFile}
}

// Exec returns the files of exec'd process name (which must be a valid
// ID) in exec/.
func (f *Folder) Exec(name string) Proc {
	return Proc{dir: filepath.Join(f.dir, execDir), name: name, pidName: name + ".pid",
		exitName: name + ".exit.json", logName: name + ".log"}
}

// MakeExecDir creates exec/ (mode 0700) if missing.
func (f *Folder) MakeExecDir() error { return os.MkdirAll(filepath.Join(f.dir, execDir), 0o700) }

// Execs lists the exec'd processes that have a pid or exit record, in no
// particular order. A missing exec/ is an empty list.
func (f *Folder) Execs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(f.dir, execDir))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var names []string
	for _, e := range ents {
		n := e.Name()
		var name string
		switch {
		case strings.HasPrefix(n, "."):
			continue // scratch files and temporaries
		case strings.HasSuffix(n, ".exit.json"):
			name = strings.TrimSuffix(n, ".exit.json")
		case strings.HasSuffix(n, ".pid"):
			name = strings.TrimSuffix(n, ".pid")
		default:
			continue
		}
		if ids.Match(name) && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names, nil
}

// Proc is the set of files of one process of a container: init, or one
// exec'd process. Like Folder it is a name only.
type Proc struct {
	dir, name                  string // name is "" for init
	pidName, exitName, logName string
}

// Name is the exec ID, "" for init.
func (p Proc) Name() string { return p.name }

// LogPath is the process's output log (CRI format; rotated copies are
// LogPath.1, .2...).
func (p Proc) LogPath() string { return filepath.Join(p.dir, p.logName) }

// ReadPid reads the process's pid record.
func (p Proc) ReadPid() (proc.Identity, error) { return readPid(p.dir, p.pidName) }

// WritePid records the identity of pid (volatile: atomic but not synced,
// see the package's write rules). A process already gone gives an error
// satisfying errors.Is(err, proc.ErrGone) and writes nothing.
func (p Proc) WritePid(pid int) (proc.Identity, error) { return writePid(p.dir, p.pidName, pid) }

// PutPid writes a known identity back (restoring a removed folder).
func (p Proc) PutPid(id proc.Identity) error {
	return writeVolatile(p.dir, p.pidName, PidRecord{Version: Version, Identity: id})
}

// RemovePid removes the pid record (once the exit record names the pid).
func (p Proc) RemovePid() error { return removeIfExists(filepath.Join(p.dir, p.pidName)) }

// HasPid reports whether a pid record exists (readable or not).
func (p Proc) HasPid() bool {
	_, err := os.Stat(filepath.Join(p.dir, p.pidName))
	return err == nil
}

// ExitPath is the exit record's path (for watching it appear).
func (p Proc) ExitPath() string { return filepath.Join(p.dir, p.exitName) }

// ReadExit reads the exit record; a missing one satisfies os.ErrNotExist.
func (p Proc) ReadExit() (*ExitRecord, error) { return readExit(p.dir, p.exitName) }

// HasExit reports whether an exit record exists (readable or not).
func (p Proc) HasExit() bool {
	_, err := os.Stat(filepath.Join(p.dir, p.exitName))
	return err == nil
}

// WriteExit writes the exit record durably, into the room Reserve set
// aside when there is some, so that it can be written on a full disk.
func (p Proc) WriteExit(rec *ExitRecord) error {
	rec.Version = Version
	return writeExit(p.dir, p.exitName, rec)
}

// Reserve sets aside room for the exit record (see WriteExit). Failing to
// is not fatal to the caller, but the guarantee is off: it should say so.
func (p Proc) Reserve() error { return reserveExit(p.dir, p.exitName) }

// ScratchSpec and ScratchPid are the scratch files of the runtime's exec
// of this process: its process spec and the runtime's pid file, removed
// as soon as the runtime returns. For init ScratchPid is runtime.pid.
func (p Proc) ScratchSpec() string { return filepath.Join(p.dir, "."+p.name+".process.json") }
func (p Proc) ScratchPid() string {
	if p.name == "" {
		return filepath.Join(p.dir, runtimePidRaw)
	}
	return filepath.Join(p.dir, "."+p.name+".runtime.pid")
}

// ConsoleSocket is where the console socket for this process goes in the
// folder (it may be too long for a socket address: the caller checks).
func (p Proc) ConsoleSocket() string {
	name := p.name
	if name == "" {
		name = "init"
	}
	return filepath.Join(p.dir, name+".console.sock")
}

// Forget removes the records and logs of a finished exec'd process
// (rotated logs up to maxRotated included), exit record first so that the
// ID is free only once its files are gone.
func (p Proc) Forget(maxRotated int) {
	os.Remove(filepath.Join(p.dir, p.exitName))
	os.Remove(filepath.Join(p.dir, p.exitName+reserveSuffix))
	os.Remove(filepath.Join(p.dir, p.pidName))
	log := p.LogPath()
	os.Remove(log)
	for i := 1; i <= maxRotated; i++ {
		os.Remove(log + "." + strconv.Itoa(i))
	}
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// versionError says a record is of a version this build does not read.
func versionError(name string, v int) error {
	if v > Version {
		return fmt.Errorf("%s: %w %d: written by a newer tether (this build reads %d to %d); use that version's tether for this container",
			name, ErrVersion, v, MinVersion, Version)
	}
	return fmt.Errorf("%s: %w %d (this build reads %d to %d)", name, ErrVersion, v, MinVersion, Version)
}

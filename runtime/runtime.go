// Package runtime is the manager's Go API: it creates containers through
// detached tether-shim processes and finds them again from the runtime root
// after the manager restarted, so a supervisor can crash or be upgraded
// while its containers run on.
//
// A Manager holds no state of its own beyond its options: everything is
// read from the root on each call, so two managers (or two CLI calls) on the
// same root see the same containers. It does not reap container processes
// or write exit records: the shims do.
//
//	m, err := runtime.New(runtime.Opts{Root: "/run/tether"})
//	c, err := m.Create(ctx, "web", "/srv/bundles/web", runtime.CreateOpts{})
//	err = c.Start(ctx)
//	exit, err := c.Wait(ctx)   // survives a restart of the manager: Load and Wait again
//	err = c.Delete(ctx, false)
package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/shimapi"
	"github.com/tether-run/tether/store"
)

// DefaultRoot is the runtime root used when Opts.Root is empty and the
// caller is root (see DefaultRootFor for anyone else).
const DefaultRoot = "/run/tether"

// The versions this build speaks (for 'tether version'): the shim control
// protocol and the records of a container's folder.
const (
	ProtocolVersion = shimapi.Version
	RecordVersion   = store.Version
)

// Errors a caller can branch on with errors.Is. Errors from a shim carry
// the same sentinels (the protocol's reply codes map onto them).
var (
	ErrNotFound   = errdefs.ErrNotFound
	ErrExists     = errdefs.ErrExists
	ErrNotRunning = errdefs.ErrNotRunning
	ErrRunning    = errdefs.ErrRunning
	ErrInvalid    = errdefs.ErrInvalid
	// ErrCommandNotFound: the process's executable is not in the
	// container (Create or Exec); ErrCommandNotExecutable: it cannot be
	// run (no execute permission, a folder).
	ErrCommandNotFound      = errdefs.ErrCommandNotFound
	ErrCommandNotExecutable = errdefs.ErrCommandNotExecutable
	// ErrUnresponsive: the container's shim did not answer in time.
	ErrUnresponsive = errdefs.ErrUnresponsive
	// ErrVersion: a record or a shim of a newer version than this build
	// reads. The container is left alone: use the newer tether for it.
	ErrVersion = errdefs.ErrVersion
	// ErrCorrupt: a record that cannot be read.
	ErrCorrupt = errdefs.ErrCorrupt
	// ErrLocked: another manager holds the container folder's lock (it is
	// creating the container, or adopting it) and the caller did not wait.
	ErrLocked = store.ErrLocked
	// ErrRuntimeNotFound: the OCI runtime binary is not on PATH.
	ErrRuntimeNotFound = errors.New("OCI runtime not found")
	// ErrShimNotFound: the tether-shim binary could not be found.
	ErrShimNotFound = errors.New("tether-shim not found")
)

// Opts configure a Manager. Every field has a usable zero value.
type Opts struct {
	// Root is the runtime root; "" means DefaultRootFor(the effective
	// uid): DefaultRoot for root, $XDG_RUNTIME_DIR/tether otherwise. Created with mode
	// 0711 if missing.
	Root string
	// Runtime is the OCI runtime binary, a name looked up on PATH or a
	// path; "" means "runc". Only Create uses it: a container keeps the
	// runtime it was created with.
	Runtime string
	// RuntimeArgs are extra global arguments for the runtime.
	RuntimeArgs []string
	// ShimBinary is the tether-shim binary; "" means the tether-shim beside
	// the running executable, then on PATH.
	ShimBinary string
	// ShimDebug makes new shims log at debug level.
	ShimDebug bool
	// RuntimeTimeout bounds each call of the OCI runtime that a new
	// container's shim makes (create, start, exec, kill, delete...): past
	// it the runtime is killed with its process group and the call fails.
	// 0 means 60 s (oci.DefaultTimeout). Create itself waits at most 2
	// minutes for the shim's answer.
	RuntimeTimeout time.Duration
	// NoAdopt turns off adoption: a container whose shim died while its
	// init runs on is reported unknown instead of being taken over by a
	// new shim (see Manager.Adopt); kill then signals the init by its
	// recorded identity and delete --force removes it.
	NoAdopt bool
	// Log receives the manager's own log lines; nil means logrus's
	// standard logger.
	Log *logrus.Entry
	// ShortLived says the manager's process exits soon after its calls
	// return (a CLI command): it then starts each shim itself, in a new
	// session, instead of through the shim's start helper, one process
	// fewer per create or adoption (`tether run -d` went from 123.6 to
	// 112.3 ms on the bench machine; README, "Benchmarks"). Until this
	// process exits the shim is its child
	// (reaped by it if it dies meanwhile); then the shim is reparented to
	// the subreaper or init. A long-lived manager (a daemon) leaves it
	// false, so that it never has shims as children.
	ShortLived bool
}

// Manager creates and finds containers in one root. It is safe for
// concurrent use.
type Manager struct {
	opts Opts
	root string
	log  *logrus.Entry
}

// New returns a Manager for opts.Root. It creates nothing: the root is
// made (mode 0711) by the first Create, so a call that fails or only reads
// leaves no trace. A root that can never be a folder (it, or the nearest
// part of its path that exists, is a file) is refused here; the error names
// the path and says what to do.
func New(opts Opts) (*Manager, error) {
	root := opts.Root
	if root == "" {
		var err error
		if root, err = DefaultRootFor(os.Geteuid()); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	if err := checkRoot(abs); err != nil {
		return nil, withRemedy(RemedyOtherRoot, "", fmt.Errorf("cannot create root %s: %w", abs, err))
	}
	if opts.Runtime == "" {
		opts.Runtime = "runc"
	}
	log := opts.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Manager{opts: opts, root: abs, log: log}, nil
}

// checkRoot reports why root cannot be a folder, without creating
// anything: root, or its nearest existing ancestor, is not a folder.
func checkRoot(root string) error {
	for p := root; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil:
			return fmt.Errorf("%s is not a folder", p)
		case !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return err
		case p == filepath.Dir(p):
			return err
		}
	}
}

// makeRoot creates the root on first use.
func (m *Manager) makeRoot() error {
	if err := os.MkdirAll(m.root, 0o711); err != nil {
		return withRemedy(RemedyOtherRoot, "", fmt.Errorf("cannot create root %s: %w", m.root, err))
	}
	return nil
}

// Root returns the absolute runtime root.
func (m *Manager) Root() string { return m.root }

// runtimeRoot is the --root given to the OCI runtime named name.
func (m *Manager) runtimeRoot(name string) string {
	return filepath.Join(m.root, ".oci", filepath.Base(name))
}

// lookRuntime resolves the runtime binary or says how to get it.
func (m *Manager) lookRuntime() (string, error) {
	path, err := exec.LookPath(m.opts.Runtime)
	if err != nil {
		return "", withRemedy(RemedyOtherRuntime, "", fmt.Errorf("%w: %q is not on PATH: install it (apt-get install %s)",
			ErrRuntimeNotFound, m.opts.Runtime, filepath.Base(m.opts.Runtime)))
	}
	return path, nil
}

// shimBinary finds tether-shim.
func (m *Manager) shimBinary() (string, error) {
	if m.opts.ShimBinary != "" {
		return m.opts.ShimBinary, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "tether-shim")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("tether-shim")
	if err != nil {
		return "", fmt.Errorf("%w: put it beside tether or on PATH ('make build' makes bin/tether-shim)", ErrShimNotFound)
	}
	return p, nil
}

// folder is the state folder of a container whose ID is valid.
func (m *Manager) folder(id string) *store.Folder { return store.At(m.root, id) }

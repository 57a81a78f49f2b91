package containerd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/store"
)

// StateDirName is the folder of a containerd bundle that holds Tether's
// runtime root for that task: its record, pid and exit records and the
// core's log are in bundle/tether/ID (the README lists them).
const StateDirName = "tether"

// stateRoot is the Tether runtime root inside a bundle.
func stateRoot(bundle string) string { return filepath.Join(bundle, StateDirName) }

// StateDir is the Tether container folder of task id in bundle.
func StateDir(bundle, id string) string { return filepath.Join(stateRoot(bundle), id) }

// coreConfig describes the container the core is to create.
type coreConfig struct {
	ID, Bundle  string
	Runtime     string // OCI runtime binary, looked up on PATH
	RuntimeRoot string
	Terminal    bool
	Stdin       bool
	IO          shim.IO
	Log         *logrus.Entry
}

// startCore creates the container with Tether's shim core in this process:
// it writes the container's record into the bundle's state folder, makes
// the core (which becomes the child subreaper and owns every wait4 of this
// process) and runs its Create. It may be called once per process. The
// subscription to the core's events is made before Create, so no OOM kill
// is missed.
func startCore(ctx context.Context, cfg coreConfig) (*shim.Shim, *shim.Subscription, int, error) {
	runtimePath, err := lookRuntime(cfg.Runtime)
	if err != nil {
		return nil, nil, 0, err
	}
	f, err := store.Open(stateRoot(cfg.Bundle), cfg.ID)
	if err != nil {
		return nil, nil, 0, err
	}
	if err := f.Make(); err != nil {
		return nil, nil, 0, fmt.Errorf("make state folder: %w", err)
	}
	boot, _ := proc.BootID()
	rec := &store.Record{Version: store.Version, ID: cfg.ID, Bundle: cfg.Bundle,
		Runtime: runtimePath, RuntimeRoot: cfg.RuntimeRoot, Terminal: cfg.Terminal, Stdin: cfg.Stdin,
		CreatedAt: time.Now().UTC(), BootID: boot}
	if err := f.WriteRecord(rec); err != nil {
		f.Remove()
		return nil, nil, 0, err
	}
	s, err := shim.New(context.Background(), shim.Options{Store: f, Record: rec, InitIO: cfg.IO, Log: cfg.Log})
	if err != nil {
		f.Remove()
		return nil, nil, 0, err
	}
	sub := s.Subscribe()
	pid, err := s.Create(ctx)
	if err != nil {
		sub.Close()
		s.Close()
		f.Remove()
		return nil, nil, 0, err
	}
	return s, sub, pid, nil
}

func lookRuntime(name string) (string, error) {
	if name == "" {
		name = "runc"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("OCI runtime %q not found: install it or set BinaryName in the runtime options: %w", name, shim.ErrInvalid)
	}
	return p, nil
}

// fifoReader reads containerd's stdin FIFO for the core. The FIFO is
// opened on the first Read, without blocking, and that Read then waits in
// Go's poller until containerd has opened its write end and written (or
// closed it): a read before that would give a false EOF. Nothing holds a
// thread meanwhile, and Close (CloseIO) ends the wait; a Read then returns
// EOF.
type fifoReader struct {
	path string

	mu     sync.Mutex
	f      *os.File
	closed bool
}

func (r *fifoReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	f, closed := r.f, r.closed
	r.mu.Unlock()
	if closed {
		return 0, io.EOF
	}
	if f == nil {
		var err error
		if f, err = openFifoReader(r.path); err != nil {
			return 0, err
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			f.Close()
			return 0, io.EOF
		}
		r.f = f
		r.mu.Unlock()
		if err := waitWriter(f); err != nil {
			if r.isClosed() {
				return 0, io.EOF
			}
			return 0, err
		}
	}
	n, err := f.Read(p)
	if err != nil && n == 0 && r.isClosed() {
		return 0, io.EOF
	}
	return n, err
}

func (r *fifoReader) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Close stops the input; it reports whether this call closed it.
func (r *fifoReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.f != nil {
		r.f.Close()
	}
	return nil
}

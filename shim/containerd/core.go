package containerd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/shim"
)

// core is what the adapter asks of Tether's shim core for one container.
// Today the core runs in this process and is reached through its own
// control socket (shim.Client); the adapter depends on nothing else of it.
type core interface {
	State(ctx context.Context) (*shim.State, error)
	Start(ctx context.Context) error
	Kill(ctx context.Context, exec string, sig syscall.Signal, all bool) error
	Pause(ctx context.Context, pause bool) error
	Delete(ctx context.Context, force bool) error
	CloseStdin(ctx context.Context, exec string) error
	Resize(ctx context.Context, exec string, width, height uint16) error
	Wait(ctx context.Context, exec string) (*shim.ExitRecord, error)
	Attach(ctx context.Context, exec string) (*shim.Stream, error)
	Exec(ctx context.Context, opts shim.ExecOpts) (*shim.State, *shim.Stream, error)
}

// StateDirName is the folder of a containerd bundle that holds Tether's
// runtime root for that task: its record, pid and exit records, control
// socket and logs are in bundle/tether/ID (the README lists them).
const StateDirName = "tether"

// coreConfig describes the container the core is to create.
type coreConfig struct {
	ID, Bundle   string
	Runtime      string // OCI runtime binary, looked up on PATH
	RuntimeRoot  string
	Terminal     bool
	Stdin        bool
	Log          *logrus.Entry
	ReadyTimeout time.Duration
}

// stateRoot is the Tether runtime root inside a bundle.
func stateRoot(bundle string) string { return filepath.Join(bundle, StateDirName) }

// StateDir is the Tether container folder of task id in bundle.
func StateDir(bundle, id string) string { return filepath.Join(stateRoot(bundle), id) }

// startCore creates the container with Tether's shim core running in this
// process: it writes the container's record, runs the core (which becomes
// the child subreaper and owns every wait4 of this process) and waits for
// its ready message. done receives the core's result once the container
// has been deleted. It may be called once per process.
func startCore(cfg coreConfig) (core, <-chan error, error) {
	runtimePath, err := lookRuntime(cfg.Runtime)
	if err != nil {
		return nil, nil, err
	}
	root, dir := stateRoot(cfg.Bundle), StateDir(cfg.Bundle, cfg.ID)
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, nil, fmt.Errorf("make state folder: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("make state folder: %w", err)
	}
	boot, _ := proc.BootID()
	rec := &shim.Record{Version: shim.SchemaVersion, ID: cfg.ID, Bundle: cfg.Bundle,
		Runtime: runtimePath, RuntimeRoot: cfg.RuntimeRoot, Terminal: cfg.Terminal, Stdin: cfg.Stdin,
		// The output goes to containerd; the core's own copy is kept
		// small (it still serves `tether logs`-style reads and survives
		// a containerd outage).
		LogMaxSize: coreLogMaxSize, LogMaxFiles: 1,
		CreatedAt: time.Now().UTC(), BootID: boot}
	if err := shim.WriteJSON(dir, shim.RecordFile, rec); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() {
		done <- shim.Run(context.Background(), shim.Config{Root: root, ID: cfg.ID, Ready: w, Log: cfg.Log})
	}()
	if err := readReady(r, cfg.ReadyTimeout); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return shim.NewClient(dir), done, nil
}

// coreLogMaxSize bounds the core's own copy of the container's output.
const coreLogMaxSize = 1 << 20

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

// readReady reads the core's one-line ready message.
func readReady(r *os.File, timeout time.Duration) error {
	defer r.Close()
	r.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("waiting for the container to be created: %w", err)
	}
	var msg shim.ReadyMessage
	if err := json.Unmarshal(line, &msg); err != nil {
		return fmt.Errorf("ready message: %w", err)
	}
	if msg.Error != "" {
		return &shim.RemoteError{Msg: msg.Error, Err: shim.ErrorOfCode(msg.Code)}
	}
	return nil
}

var errNoTask = errors.New("no task")

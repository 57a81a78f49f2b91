package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tether-run/tether/store"
)

// DefaultStopGrace is the grace period of Stop when none is given.
const DefaultStopGrace = 10 * time.Second

// StopSignalAnnotation is the bundle annotation naming the signal Stop
// sends first (see Container.Stop).
const StopSignalAnnotation = "org.opencontainers.image.stopSignal"

// StopOpts are the options of Stop; the zero value sends the bundle's
// stop signal (or SIGTERM) and waits 10 s before SIGKILL.
type StopOpts struct {
	// Signal is sent first; 0 means the signal the bundle's
	// StopSignalAnnotation names, or SIGTERM without one.
	Signal syscall.Signal
	// Grace is how long init has to exit after Signal before SIGKILL goes
	// to every process of the container; 0 means DefaultStopGrace, and
	// NoGrace kills at once.
	Grace time.Duration
	// NoGrace sends SIGKILL right after Signal.
	NoGrace bool
}

// Stop ends the container and returns init's exit record once it is
// durable: the shim sends opts.Signal (a paused container is thawed so it
// can act on it), then SIGKILL after the grace period. The shim does the
// whole stop: when ctx ends, or this process dies, before it is done, the
// stop still completes. A stopped container gives its exit record at once.
// Without a shim (it died and cannot be adopted) init is killed by its
// recorded identity.
func (c *Container) Stop(ctx context.Context, opts StopOpts) (*ExitRecord, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	grace := opts.Grace
	if grace == 0 {
		grace = DefaultStopGrace
	}
	if opts.NoGrace {
		grace = 0
	}
	if grace < 0 || opts.Signal < 0 || opts.Signal > 64 {
		return nil, fmt.Errorf("stop %s: %w: grace %v, signal %d", c.id, ErrInvalid, grace, opts.Signal)
	}
	if exit, err := c.st.Init().ReadExit(); err == nil {
		return fromStoreExit(exit), nil
	}
	if _, err := c.checkShim(); shimGone(err) && !c.adoptIfAllowed(ctx) {
		if err := c.killOrphan("", syscall.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
			return nil, err
		}
		return c.Wait(ctx)
	}
	exit, err := c.client().Stop(ctx, opts.Signal, grace)
	if err != nil {
		if exit, rerr := c.st.Init().ReadExit(); rerr == nil {
			return fromStoreExit(exit), nil // it ended, and the shim went away
		}
		return nil, c.wrap("stop", err)
	}
	return fromWireExit(exit), nil
}

// CheckpointOpts are the options of Checkpoint.
type CheckpointOpts struct {
	// ImagePath is the folder for CRIU's images; "" means
	// ROOT/.checkpoints/ID. It is made if missing.
	ImagePath string
	// LeaveRunning keeps the container running after the dump; otherwise
	// it is killed once dumped (its exit record says 137, "checkpointed to
	// IMAGE").
	LeaveRunning bool
}

// Checkpoint dumps the running container with CRIU through its OCI runtime
// (runc or crun, whichever made it) and returns the image folder. The
// folder also gets tether-checkpoint.json, naming the bundle and runtime,
// which Restore reads. A container with a terminal or with exec'd
// processes still running is refused (ErrInvalid), and so is one that is
// not running. CRIU's own last errors come with a failure.
func (c *Container) Checkpoint(ctx context.Context, opts CheckpointOpts) (string, error) {
	if err := c.usable(); err != nil {
		return "", err
	}
	dir := opts.ImagePath
	if dir == "" {
		dir = filepath.Join(c.m.root, ".checkpoints", c.id)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", c.id, err)
	}
	if err := c.checkpointOutlives(abs, opts.LeaveRunning); err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("checkpoint %s: image folder: %w", c.id, err)
	}
	if err := c.client().Checkpoint(ctx, abs, "", opts.LeaveRunning); err != nil {
		return "", c.wrap("checkpoint", err)
	}
	return abs, nil
}

// RestoreOpts are the options of Restore.
type RestoreOpts struct {
	// Bundle is the restored container's bundle; "" means the one the
	// checkpoint's tether-checkpoint.json names. Its rootfs must hold
	// what the checkpointed processes had open.
	Bundle string
	// Stdin keeps a pipe to the restored init's stdin (the checkpoint's
	// own choice when it was made by tether).
	Stdin bool
	// LogMaxSize and LogMaxFiles rotate the new output.log (see
	// CreateOpts).
	LogMaxSize  int64
	LogMaxFiles int
}

// Restore makes container id from the checkpoint in imagePath, under a
// shim of its own, through the OCI runtime's restore: its init runs at
// once (no Start) and its output goes to id's own log. After that it is a
// container like any other: it survives manager restarts and is found by
// Load and List. The checkpoint must have been made with the manager's
// runtime. On error nothing is left behind, as with Create; the runtime's
// and CRIU's own errors say why (CRIU's restore.log is kept in the
// container folder's criu/ while the container lives).
func (m *Manager) Restore(ctx context.Context, id, imagePath string, opts RestoreOpts) (*Container, error) {
	abs, err := filepath.Abs(imagePath)
	if err != nil || imagePath == "" {
		return nil, fmt.Errorf("restore %s: %w: give the checkpoint's folder (--image-path)", id, ErrInvalid)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("restore %s: %w: no checkpoint folder %s: give the folder 'tether checkpoint' wrote", id, ErrInvalid, abs)
	}
	info, err := store.ReadCheckpointInfo(abs)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("restore %s: %w", id, err)
	}
	bundleDir := opts.Bundle
	if bundleDir == "" && info != nil {
		bundleDir = info.Bundle
	}
	if info != nil && filepath.Base(info.Runtime) != filepath.Base(m.opts.Runtime) && m.opts.Runtime != "" {
		return nil, fmt.Errorf("restore %s: %w: the checkpoint was made with %s, not %s: use --runtime %s",
			id, ErrInvalid, info.Runtime, m.opts.Runtime, filepath.Base(info.Runtime))
	}
	stdin := opts.Stdin || (info != nil && info.Stdin)
	rec, command, err := m.newRecord(id, bundleDir, CreateOpts{Stdin: stdin,
		LogMaxSize: opts.LogMaxSize, LogMaxFiles: opts.LogMaxFiles})
	if err != nil {
		return nil, err
	}
	rec.RestoredFrom = abs
	return m.create(ctx, rec, command)
}

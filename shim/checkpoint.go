package shim

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/store"
)

// CheckpointConfig describes a checkpoint of the container.
type CheckpointConfig struct {
	// ImagePath is the absolute folder CRIU writes the images into; it is
	// made if missing.
	ImagePath string
	// WorkPath is where CRIU's dump.log goes; "" means ImagePath.
	WorkPath string
	// LeaveRunning keeps the container running after the dump; otherwise
	// it is killed once dumped and its exit record (137) says
	// "checkpointed to IMAGE".
	LeaveRunning bool
}

// Checkpoint dumps the running container with CRIU through the runtime
// and writes store.CheckpointInfo next to the images, so that a restore
// can find the bundle and runtime. Refused: a container that is not
// running (a *TransitionError), one with a terminal, or with exec'd
// processes still running (their new shim would not know them), each
// with ErrInvalid and what to do.
func (s *Shim) Checkpoint(ctx context.Context, cfg CheckpointConfig) error {
	p, err := s.target("")
	if err != nil {
		return err
	}
	if !filepath.IsAbs(cfg.ImagePath) {
		return fmt.Errorf("%w: checkpoint image path %q must be absolute", ErrInvalid, cfg.ImagePath)
	}
	if s.rec.Terminal {
		return fmt.Errorf("%w: container %s has a terminal: checkpointing it is not supported", ErrInvalid, s.id)
	}
	p.op.Lock()
	defer p.op.Unlock()
	if status, _, _ := p.current(); status != StatusRunning {
		return fmt.Errorf("container %s is %s: %w", s.id, status, &TransitionError{From: status, To: "checkpointed"})
	}
	if n := s.runningExecs(); n > 0 {
		return fmt.Errorf("%w: container %s has %d exec'd processes running: wait for them or kill them before a checkpoint", ErrInvalid, s.id, n)
	}
	if !cfg.LeaveRunning {
		p.setKilled("checkpointed to " + cfg.ImagePath)
	}
	err = s.rt.Checkpoint(ctx, s.id, &oci.CheckpointOpts{ImagePath: cfg.ImagePath,
		WorkPath: cfg.WorkPath, LeaveRunning: cfg.LeaveRunning})
	if err != nil {
		p.setKilled("")
		return err
	}
	info := &store.CheckpointInfo{ID: s.id, Bundle: s.rec.Bundle, Runtime: s.rec.Runtime,
		Stdin: s.rec.Stdin, LeaveRunning: cfg.LeaveRunning}
	if err := store.WriteCheckpointInfo(cfg.ImagePath, info); err != nil {
		return fmt.Errorf("checkpoint %s: %w", s.id, err)
	}
	s.journal(store.Event{Type: store.EventCheckpointed, Pid: p.pidNow(), ImagePath: cfg.ImagePath})
	return nil
}

// runningExecs counts the exec'd processes that have not exited.
func (s *Shim) runningExecs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.execs {
		if status, _, _ := p.current(); status != StatusStopped {
			n++
		}
	}
	return n
}

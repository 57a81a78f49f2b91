package store

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// checkpointInfoFile is tether's note in a checkpoint's image folder.
const checkpointInfoFile = "tether-checkpoint.json"

// CheckpointInfo is what tether notes next to CRIU's images when it
// checkpoints a container, so that a restore can default to the same
// bundle and check the runtime.
type CheckpointInfo struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	// Bundle is the checkpointed container's bundle (absolute).
	Bundle string `json:"bundle"`
	// Runtime is the OCI runtime that dumped it; CRIU images restore
	// with the same one.
	Runtime string `json:"runtime"`
	// Stdin says the container had a stdin pipe.
	Stdin bool `json:"stdin,omitempty"`
	// LeaveRunning says the container went on running after the dump.
	LeaveRunning   bool      `json:"leave_running,omitempty"`
	CheckpointedAt time.Time `json:"checkpointed_at"`
}

// WriteCheckpointInfo writes info (Version and CheckpointedAt set) into
// the image folder dir, durably.
func WriteCheckpointInfo(dir string, info *CheckpointInfo) error {
	info.Version = Version
	info.CheckpointedAt = time.Now().UTC()
	return writeDurable(dir, checkpointInfoFile, info)
}

// ReadCheckpointInfo reads tether's note in the image folder dir; a
// folder without one (images made by another tool) gives an error
// satisfying os.ErrNotExist.
func ReadCheckpointInfo(dir string) (*CheckpointInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointInfoFile))
	if err != nil {
		return nil, err
	}
	var info CheckpointInfo
	if err := decode(checkpointInfoFile, b, &info); err != nil {
		return nil, err
	}
	if info.Bundle != "" && !filepath.IsAbs(info.Bundle) {
		return nil, fmt.Errorf("%s: %w: bundle must be absolute", checkpointInfoFile, ErrCorrupt)
	}
	return &info, nil
}

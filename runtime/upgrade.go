package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tether-run/tether/shimapi"
)

// ErrNotUpgradable: the container's shim cannot be upgraded in place.
var ErrNotUpgradable = errors.New("shim cannot be upgraded in place")

// Upgrade reports an in-place shim upgrade: the same shim process (ShimPid)
// ran From before and runs To now.
type Upgrade struct {
	ShimPid  int
	From, To ShimBuild
}

// ShimBuild names a shim binary: its path and the VCS revision it was
// built from ("-dirty" when modified, "unknown" when not stamped).
type ShimBuild struct {
	Binary  string
	Version string
}

// Upgrade has the container's shim execve binary in place ("" means the
// manager's shim binary: Opts.ShimBinary, or the tether-shim beside the
// program). The shim keeps its pid, so the container is untouched: it
// stays the parent and subreaper of its processes and hands the new binary
// its listener, the output pipes, the pty master and stdin. The new binary
// checks the handoff first; a binary that is missing, broken or refuses
// the handoff leaves the old one serving, and the error says why.
//
// Waits in flight get their answer from the new binary (Wait asks again
// when the connection closes); attach streams end, and are opened again
// by attaching again. A shim that predates upgrades (no upgrade operation)
// gives an error wrapping ErrNotUpgradable.
func (c *Container) Upgrade(ctx context.Context, binary string) (*Upgrade, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if binary == "" {
		var err error
		if binary, err = c.m.shimBinary(); err != nil {
			return nil, c.wrap("upgrade", err)
		}
	}
	abs, err := filepath.Abs(binary)
	if err != nil {
		return nil, c.wrap("upgrade", err)
	}
	sid, err := c.checkShim()
	if err != nil {
		return nil, fmt.Errorf("upgrade %s: no live shim to upgrade (%v): %w", c.id, err, ErrNotUpgradable)
	}
	u, err := c.client().Upgrade(ctx, abs)
	if err != nil {
		if strings.Contains(err.Error(), `unknown operation "`+shimapi.OpUpgrade+`"`) {
			return nil, fmt.Errorf("upgrade %s: shim pid %d predates in-place upgrades (%w): restart the container to move it to the new shim", c.id, sid.Pid, ErrNotUpgradable)
		}
		return nil, c.wrap("upgrade", err)
	}
	return &Upgrade{ShimPid: u.Pid, From: ShimBuild(u.From), To: ShimBuild(u.To)}, nil
}

package runtime

import (
	"context"
	"fmt"

	"github.com/tether-run/tether/cgroups"
)

// Metrics is a container's resource use and limits as read from its
// cgroups: CPU, memory (with OOM kills), pids and block IO, each section
// saying whether it came from cgroup v1 or v2 (see package cgroups).
type Metrics = cgroups.Stats

// Resources is a change of a running container's limits; build it with
// cgroups.ParseMemory, ParseCPUs and ParsePids.
type Resources = cgroups.Update

// Metrics reads the container's cgroups through its shim. A container
// whose init has exited and whose cgroup the runtime has removed gives an
// error wrapping ErrNotFound.
func (c *Container) Metrics(ctx context.Context) (*Metrics, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	m, err := c.client().Metrics(ctx)
	if err != nil {
		return nil, c.wrap("metrics", err)
	}
	return m, nil
}

// Update changes the limits of a running container through the OCI
// runtime's update (runc and crun). r is checked first (ErrInvalid, and
// nothing is asked of the shim); when it changes the memory limit alone,
// the container keeps the swap allowance it has (Resources.KeepSwap).
// The runtime's own refusal comes back with its message, and the limits
// stay as they were.
func (c *Container) Update(ctx context.Context, r *Resources) error {
	if r == nil {
		return fmt.Errorf("update %s: %w: no limit to change", c.id, ErrInvalid)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("update %s: %w: %w", c.id, ErrInvalid, err)
	}
	if err := c.usable(); err != nil {
		return err
	}
	u := *r
	if u.Memory != nil && u.MemorySwap == nil {
		m, err := c.Metrics(ctx)
		if err != nil {
			return err
		}
		u.KeepSwap(m.Memory)
	}
	return c.wrap("update", c.client().Update(ctx, u.Resources()))
}

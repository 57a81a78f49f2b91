package shim

import (
	"context"
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/tether-run/tether/cgroups"
)

// ErrNoCgroup: the container's cgroups could not be found (its init had
// already exited when the shim looked, or no hierarchy is mounted).
var ErrNoCgroup = errors.New("container cgroup not known")

// loadCgroup finds init's cgroups while it runs, so that its OOM kill
// count can still be read once it has exited (the group stays until the
// runtime's delete). A failure is logged: the exit record then carries no
// OOM fields.
func (s *Shim) loadCgroup(pid int) {
	cg, err := cgroups.Load(pid)
	if err != nil {
		s.log.WithError(err).Warn("container cgroup not found: OOM kills will not be recorded")
		return
	}
	s.mu.Lock()
	s.cg = cg
	s.mu.Unlock()
	s.log.WithField("cgroup", cg.String()).Debug("container cgroup")
}

func (s *Shim) cgroup() (*cgroups.Cgroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cg == nil {
		return nil, ErrNoCgroup
	}
	return s.cg, nil
}

// oomKills reads the container's OOM kill counter for init's exit record.
// The kernel counts a kill before it sends SIGKILL, so when the reaper has
// seen init die of one, the count includes it.
func (s *Shim) oomKills() uint64 {
	cg, err := s.cgroup()
	if err != nil {
		return 0
	}
	n, err := cg.OOMKills()
	if err != nil {
		s.log.WithError(err).Warn("OOM kill count not read")
		return 0
	}
	if n > 0 {
		s.log.WithFields(logrus.Fields{"oom_kills": n}).Warn("the OOM killer killed processes of the container")
	}
	return n
}

// Metrics reads the container's usage and limits from its cgroups.
// Errors: ErrNoCgroup; one wrapping cgroups.ErrNotFound once the runtime
// has removed the group.
func (s *Shim) Metrics() (*cgroups.Stats, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	cg, err := s.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}

// Update changes the container's limits through the runtime's update;
// only the fields set in res change. A value the runtime refuses comes
// back with its own message and changes nothing.
func (s *Shim) Update(ctx context.Context, res *specs.LinuxResources) error {
	if err := s.ready(); err != nil {
		return err
	}
	if res == nil {
		return fmt.Errorf("%w: no resources to update", ErrInvalid)
	}
	if status, _, _ := s.init.current(); status == StatusStopped {
		return fmt.Errorf("update: %w", ErrNotRunning)
	}
	return fromOCI(s.rt.Update(ctx, s.id, res))
}

package shim

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	if noOwnCgroup(pid) {
		s.mu.Lock()
		s.sharedCg = true
		s.mu.Unlock()
		s.log.Info("the container has no cgroup of its own (rootless, no delegated cgroup): no stats, update or OOM records")
		return
	}
	cg, err := cgroups.Load(pid)
	if err != nil {
		s.log.WithError(err).Warn("container cgroup not found: OOM kills will not be recorded")
		return
	}
	told, _ := cg.OOMKills() // kills before we watched were told by nobody live; the exit record keeps them
	s.mu.Lock()
	s.cg = cg
	s.oomTold = told
	s.mu.Unlock()
	s.log.WithField("cgroup", cg.String()).Debug("container cgroup")
}

// watchOOM publishes an EventOOM for each OOM kill the container's cgroup
// reports, until the group is removed (the runtime's delete) or ctx ends.
// A kill whose victim is init is left to init's exit path, which publishes
// it after the exit record holding oom_killed is durable: the kernel
// queues SIGKILL on its victim before it counts the kill, so init is
// Dying by the time the watcher reads the count.
func (s *Shim) watchOOM(ctx context.Context) {
	cg, err := s.cgroup()
	if err != nil {
		return
	}
	w, err := cg.WatchOOM(ctx)
	if err != nil {
		s.log.WithError(err).Warn("OOM kills will not be reported live")
		return
	}
	defer w.Close()
	for ev := range w.Events() {
		if s.initDying() {
			continue
		}
		s.announceOOM(ev.Kills, ev.Time)
	}
	if err := w.Err(); err != nil && !errors.Is(err, cgroups.ErrNotFound) {
		s.log.WithError(err).Warn("OOM watch ended")
	}
}

// initDying reports whether init has exited or is about to (SIGKILL
// pending).
func (s *Shim) initDying() bool {
	status, id, _ := s.init.current()
	return status == StatusStopped || id.Dying()
}

// announceOOM journals and publishes an EventOOM for an OOM kill count
// not told yet.
func (s *Shim) announceOOM(kills uint64, at time.Time) {
	if s.claimOOM(kills) {
		s.journalOOM(kills, at)
		s.publishOOM(kills, at)
	}
}

// claimOOM reports whether the OOM kill count kills is new, and marks it
// told.
func (s *Shim) claimOOM(kills uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kills <= s.oomTold {
		return false
	}
	s.oomTold = kills
	return true
}

// publishOOM publishes an EventOOM (after journalOOM: whoever is told
// finds it in the journal).
func (s *Shim) publishOOM(kills uint64, at time.Time) {
	s.log.WithField("oom_kills", kills).Warn("OOM kill in the container")
	s.events.publish(Event{Kind: EventOOM, OOM: &OOM{Time: at.UTC(), Kills: kills}})
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
	if err := s.ownCgroup(); err != nil {
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
	if err := s.ownCgroup(); err != nil {
		return err
	}
	return fromOCI(s.rt.Update(ctx, s.id, res))
}

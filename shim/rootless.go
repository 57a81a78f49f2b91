package shim

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tether-run/tether/internal/proc"
)

// noOwnCgroup says whether the process pid of a rootless container has no
// cgroup of its own: the runtime could not make one (no delegated cgroup
// v2 subtree), so it stays in the cgroups of whoever ran the runtime, this
// shim, or in the root cgroup. Its cgroup's stats would then be the shim's
// and its caller's, and an update would change theirs: both are refused
// (ownCgroup). As root a container always has one.
func noOwnCgroup(pid int) bool {
	if os.Geteuid() == 0 {
		return false
	}
	theirs, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return false
	}
	ours, err := os.ReadFile("/proc/self/cgroup")
	if err == nil && bytes.Equal(theirs, ours) {
		return true
	}
	for _, line := range strings.Split(strings.TrimSpace(string(theirs)), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && parts[2] != "/" {
			return false
		}
	}
	return true // every hierarchy at its root: not the container's
}

// ownCgroup refuses stats and update for a container without a
// cgroup of its own, in one line that says why and what to do.
func (s *Shim) ownCgroup() error {
	s.mu.Lock()
	shared := s.sharedCg
	s.mu.Unlock()
	if !shared {
		return nil
	}
	return fmt.Errorf("container %s has no cgroup of its own (rootless, and its user owns no delegated cgroup v2 subtree): stats and update need one: "+
		"create the container from a cgroup v2 subtree delegated to the user (systemd's Delegate=yes, as in a systemd user session)", s.id)
}

// namespacePids lists the processes of the container whose init is pid
// without its cgroup: every process in init's PID namespace, or when init
// shares this one's, init and its descendants.
func namespacePids(pid int) ([]int, error) {
	ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		return nil, fmt.Errorf("pid namespace of init %d: %w", pid, err)
	}
	own, _ := os.Readlink("/proc/self/ns/pid")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var all []int
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns != own {
			if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && l == ns {
				all = append(all, p)
			}
			continue
		}
		if st, err := proc.ReadStat(p); err == nil {
			parent[p] = st.PPid
		}
	}
	if ns != own {
		return all, nil
	}
	for p := range parent {
		for q, n := p, 0; q > 1 && n < len(parent); q, n = parent[q], n+1 { // n: no loop on a racy snapshot
			if q == pid {
				all = append(all, p)
				break
			}
		}
	}
	slices.Sort(all)
	return all, nil
}

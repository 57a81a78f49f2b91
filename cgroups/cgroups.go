// Package cgroups finds a process's control groups and reads what the
// kernel keeps there: resource usage (CPU, memory, pids, block IO), limits
// and OOM kills, on cgroup v1, v2 and hybrid hosts alike.
//
// It owns only the reading side of cgroupfs: where a process's cgroup is
// (from /proc/PID/cgroup and the mounts in /proc/self/mountinfo, never an
// assumed /sys/fs/cgroup layout), the typed Stats read from its files, the
// OOM kill counter and an OOMWatcher on it, and the parsing and checking
// of resource values a user gives (ParseMemory, ParseCPUs, ParsePids).
// It never writes a limit: changing one is the OCI runtime's job
// (`runc update`, `crun update`), through the runtime binding. It imports
// nothing of Tether above it.
//
// Paths are resolved in the caller's cgroup namespace, the same namespace
// /proc/PID/cgroup and /proc/self/mountinfo are printed in, so a caller
// running in a cgroup namespace of its own still finds the right folders,
// and a cgroup outside the part of a hierarchy it can see is reported as
// ErrNotFound instead of being mistaken for another.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sentinel errors; compare with errors.Is.
var (
	// ErrNotFound: the process, its cgroup, or the hierarchy a controller
	// lives in is not there (the process exited, the cgroup was removed,
	// the hierarchy is not mounted where this process can see it).
	ErrNotFound = errors.New("cgroup not found")
	// ErrNotSupported: the kernel does not offer what was asked (for
	// example the oom_kill counter of cgroup v1 before Linux 4.13).
	ErrNotSupported = errors.New("not supported by this kernel")
	// ErrInvalid: a value given by the user or read from the kernel does
	// not parse.
	ErrInvalid = errors.New("invalid value")
)

// Mode says which cgroup hierarchies a process's cgroups live in.
type Mode int

const (
	// ModeNone: no cgroup hierarchy of the process is mounted.
	ModeNone Mode = iota
	// ModeV1: only cgroup v1 hierarchies ("legacy").
	ModeV1
	// ModeHybrid: v1 hierarchies hold the controllers, and a cgroup v2
	// hierarchy (usually /sys/fs/cgroup/unified) is mounted too.
	ModeHybrid
	// ModeV2: only the unified cgroup v2 hierarchy.
	ModeV2
)

// String returns "none", "v1", "hybrid" or "v2".
func (m Mode) String() string {
	switch m {
	case ModeV1:
		return "v1"
	case ModeHybrid:
		return "hybrid"
	case ModeV2:
		return "v2"
	}
	return "none"
}

// Cgroup is where one process's cgroups are, as absolute folders in the
// mounted hierarchies. It is a snapshot taken by Load: moving the process
// to another cgroup later does not change it. The zero value has no
// hierarchy at all; every read on it fails with ErrNotFound.
type Cgroup struct {
	// V1 maps each cgroup v1 controller ("memory", "cpu", "cpuacct",
	// "pids", "blkio", ...) and named hierarchy ("name=systemd") to the
	// process's folder in it. Controllers co-mounted on one hierarchy
	// ("cpu,cpuacct") each get an entry with the same folder. Empty on a
	// v2-only host.
	V1 map[string]string
	// Unified is the process's folder in the cgroup v2 hierarchy, or ""
	// when none is mounted where this process can see it.
	Unified string
}

// Mode returns which hierarchies c has folders in.
func (c *Cgroup) Mode() Mode {
	switch {
	case len(c.V1) > 0 && c.Unified != "":
		return ModeHybrid
	case len(c.V1) > 0:
		return ModeV1
	case c.Unified != "":
		return ModeV2
	}
	return ModeNone
}

// String describes c in one line, for logs and errors.
func (c *Cgroup) String() string {
	var parts []string
	seen := map[string]bool{}
	keys := make([]string, 0, len(c.V1))
	for k := range c.V1 {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !seen[c.V1[k]] {
			seen[c.V1[k]] = true
			parts = append(parts, c.V1[k])
		}
	}
	if c.Unified != "" {
		parts = append(parts, c.Unified)
	}
	return c.Mode().String() + " " + strings.Join(parts, " ")
}

// Load finds the cgroups of process pid from /proc/PID/cgroup and the
// cgroup mounts in /proc/self/mountinfo. It fails with an error wrapping
// ErrNotFound when the process is gone or none of its cgroups is
// reachable through a mount.
func Load(pid int) (*Cgroup, error) {
	procFile := fmt.Sprintf("/proc/%d/cgroup", pid)
	pc, err := os.ReadFile(procFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errESRCH) {
			return nil, fmt.Errorf("cgroups of pid %d: %w: the process is gone", pid, ErrNotFound)
		}
		return nil, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	c, err := Parse(string(pc), string(mi))
	if err != nil {
		return nil, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	return c, nil
}

// Parse is Load's work on the text of a /proc/PID/cgroup file and of a
// /proc/self/mountinfo file, both read in the same cgroup namespace.
// Hierarchies that are not mounted, or whose mounts do not reach the
// process's cgroup (its path lies outside the mount's root), are left out;
// if that leaves nothing, the error wraps ErrNotFound.
func Parse(procCgroup, mountinfo string) (*Cgroup, error) {
	entries, err := parseProcCgroup(procCgroup)
	if err != nil {
		return nil, err
	}
	mounts, err := parseMountinfo(mountinfo)
	if err != nil {
		return nil, err
	}
	c := &Cgroup{V1: map[string]string{}}
	for _, e := range entries {
		if e.unified() {
			c.Unified = resolve(mounts, e, "")
			continue
		}
		for _, ctl := range e.controllers {
			if dir := resolve(mounts, e, ctl); dir != "" {
				for _, same := range e.controllers {
					c.V1[same] = dir
				}
				break
			}
		}
	}
	if c.Mode() == ModeNone {
		return nil, fmt.Errorf("%w: no cgroup hierarchy of the process is mounted here (see /proc/self/mountinfo)", ErrNotFound)
	}
	return c, nil
}

// resolve returns the folder of e's cgroup under the first mount of its
// hierarchy (the v2 one when ctl is "") whose root contains it, or "".
func resolve(mounts []mount, e procEntry, ctl string) string {
	for _, m := range mounts {
		if ctl == "" && !m.v2 || ctl != "" && (m.v2 || !m.has(ctl)) {
			continue
		}
		rel, ok := within(m.root, e.path)
		if !ok {
			continue
		}
		return filepath.Join(m.point, rel)
	}
	return ""
}

// within returns path relative to root when path is root or below it.
// A path with ".." in it lies outside the caller's cgroup namespace (the
// kernel prints such paths relative to the namespace's root).
func within(root, path string) (string, bool) {
	if !strings.HasPrefix(path, "/") || path == "/.." || strings.HasPrefix(path, "/../") || strings.Contains(path, "/../") {
		return "", false
	}
	root, path = filepath.Clean(root), filepath.Clean(path)
	if root == "/" {
		return path, true
	}
	if path == root {
		return "/", true
	}
	if strings.HasPrefix(path, root+"/") {
		return path[len(root):], true
	}
	return "", false
}

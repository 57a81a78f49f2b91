package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tether-run/tether/internal/mountinfo"
)

// Mount is one line of /proc/PID/mountinfo.
type Mount = mountinfo.Mount

// ReadMountInfo parses a mountinfo file.
func ReadMountInfo(file string) ([]Mount, error) { return mountinfo.Read(file) }

// within reports whether path is dir or under it.
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// containing returns the mount of ms that holds path: the longest mount
// point above it, the last mounted when several are stacked.
func containing(ms []Mount, path string) (Mount, bool) {
	var best Mount
	found := false
	for _, m := range ms {
		if within(path, m.Point) && (!found || len(m.Point) >= len(best.Point)) {
			best, found = m, true
		}
	}
	return best, found
}

// MountsOf lists the mountinfo lines, across every process's mount
// namespace, that mount the folder path or anything under it: a
// container's root in its own namespace, or a mount leaked to ours.
//
// A mountinfo root field is relative to the mount's own filesystem, not an
// absolute path: with /tmp on its own tmpfs, a bind mount of
// /tmp/x/rootfs shows the root /x/rootfs. So a mount is matched by the
// filesystem's device and the folder's path inside that filesystem, which
// are the same in every namespace, or by its mount point in ours.
func MountsOf(path string) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if p, err := filepath.EvalSymlinks(abs); err == nil {
		abs = p
	}
	self, err := ReadMountInfo("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	host, ok := containing(self, abs)
	if !ok {
		return nil, fmt.Errorf("no mount holds %s", abs)
	}
	rel, err := filepath.Rel(host.Point, abs)
	if err != nil {
		return nil, err
	}
	fsPath := filepath.Join(host.Root, rel) // the folder inside its filesystem
	ourNS, _ := os.Readlink("/proc/self/ns/mnt")
	files, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	var refs []string
	for _, f := range files {
		ms, err := ReadMountInfo(f)
		if err != nil {
			continue // the process ended meanwhile
		}
		ns, _ := os.Readlink(filepath.Join(filepath.Dir(f), "ns", "mnt"))
		for _, m := range ms {
			if (m.Dev == host.Dev && within(m.Root, fsPath)) ||
				(ns == ourNS && within(m.Point, abs)) {
				refs = append(refs, fmt.Sprintf("%s: %s %s on %s (%s)", f, m.Dev, m.Root, m.Point, m.FSType))
			}
		}
	}
	return refs, nil
}

// CgroupMountPoints lists where the cgroup hierarchies (v1 and v2) are
// mounted in our namespace, from mountinfo rather than an assumed
// /sys/fs/cgroup layout.
func CgroupMountPoints() ([]string, error) {
	ms, err := ReadMountInfo("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var pts []string
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			pts = append(pts, m.Point)
		}
	}
	return pts, nil
}

// CgroupDirs returns pid's cgroup folders that exist, one per hierarchy it
// is in (the root cgroup left out), each found under the mount of that
// hierarchy: cgroup2 for the unified one, the cgroup mount whose options
// name the controllers for a v1 one.
func CgroupDirs(pid int) ([]string, error) {
	cgs, err := cgroupsOf(pid)
	var dirs []string
	for _, cg := range cgs {
		dirs = append(dirs, cg.dir)
	}
	return dirs, err
}

// CgroupFrozen reads, from the kernel, whether pid's cgroup is frozen: the
// v1 freezer's freezer.state when a freezer hierarchy holds pid (the
// runtimes use it there), otherwise cgroup v2's "frozen" in cgroup.events.
func CgroupFrozen(pid int) (bool, error) {
	cgs, err := cgroupsOf(pid)
	if err != nil {
		return false, err
	}
	for _, cg := range cgs {
		if slices.Contains(strings.Split(cg.controllers, ","), "freezer") {
			b, err := os.ReadFile(filepath.Join(cg.dir, "freezer.state"))
			if err != nil {
				return false, err
			}
			return strings.TrimSpace(string(b)) == "FROZEN", nil
		}
	}
	for _, cg := range cgs {
		if cg.controllers == "" {
			b, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.events"))
			if err != nil {
				return false, err
			}
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "frozen "); ok {
					return v == "1", nil
				}
			}
			return false, fmt.Errorf("%s/cgroup.events has no frozen field", cg.dir)
		}
	}
	return false, fmt.Errorf("pid %d is in no freezer cgroup (v1) and no cgroup v2 of its own", pid)
}

// cgroupDir is one hierarchy's cgroup of a process.
type cgroupDir struct {
	controllers string // as /proc/PID/cgroup names them, "" for cgroup v2
	dir         string
}

// cgroupsOf maps /proc/PID/cgroup to existing folders (root cgroups left out).
func cgroupsOf(pid int) ([]cgroupDir, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	ms, err := ReadMountInfo("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var cgs []cgroupDir
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3) // hierarchy-ID:controllers:path
		if len(parts) != 3 || parts[2] == "/" {
			continue
		}
		for _, m := range ms {
			if !cgroupMountFor(m, parts[1]) || !within(parts[2], m.Root) {
				continue
			}
			rel, _ := filepath.Rel(m.Root, parts[2])
			dir := filepath.Join(m.Point, rel)
			if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
				cgs = append(cgs, cgroupDir{parts[1], dir})
				break
			}
		}
	}
	return cgs, nil
}

// cgroupMountFor reports whether m mounts the hierarchy that a
// /proc/PID/cgroup line names by its controllers ("" for cgroup v2).
func cgroupMountFor(m Mount, controllers string) bool {
	if controllers == "" {
		return m.FSType == "cgroup2"
	}
	if m.FSType != "cgroup" {
		return false
	}
	for _, c := range strings.Split(controllers, ",") {
		if !slices.Contains(m.Opts, c) {
			return false
		}
	}
	return true
}

// CgroupPathDir returns the folder of the cgroup at path (a bundle's
// linux.cgroupsPath, absolute) that holds controller's files: in the v1
// hierarchy mounted with controller when there is one, otherwise in the
// cgroup v2 hierarchy; v2 says which. It finds the folder even after the
// container's processes are gone, as long as the runtime has not deleted it.
func CgroupPathDir(path, controller string) (dir string, v2 bool, err error) {
	ms, err := ReadMountInfo("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	for _, want := range []string{"cgroup", "cgroup2"} {
		for _, m := range ms {
			if m.FSType != want || (want == "cgroup" && !slices.Contains(m.Opts, controller)) || !within(path, m.Root) {
				continue
			}
			rel, _ := filepath.Rel(m.Root, path)
			dir := filepath.Join(m.Point, rel)
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return "", false, fmt.Errorf("cgroup %s has no folder %s: %v", path, dir, err)
			}
			return dir, want == "cgroup2", nil
		}
	}
	return "", false, fmt.Errorf("no cgroup hierarchy (v1 with %s, or v2) is mounted", controller)
}

// CgroupKeyed reads the value of key from a cgroup file of "key value"
// lines (memory.events, pids.events, memory.oom_control).
func CgroupKeyed(file, key string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+" "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %q line", file, key)
}

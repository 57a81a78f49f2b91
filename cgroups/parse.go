package cgroups

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/tether-run/tether/internal/mountinfo"
)

var errESRCH = syscall.ESRCH

// procEntry is one line of /proc/PID/cgroup:
// "hierarchy-ID:controller-list:cgroup-path".
type procEntry struct {
	id          int
	controllers []string
	path        string
}

// unified reports whether e is the cgroup v2 line ("0::/path").
func (e procEntry) unified() bool { return e.id == 0 && len(e.controllers) == 0 }

// parseProcCgroup parses the text of /proc/PID/cgroup.
func parseProcCgroup(text string) ([]procEntry, error) {
	var out []procEntry
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("%w: /proc/PID/cgroup line %q has not 3 fields", ErrInvalid, line)
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("%w: /proc/PID/cgroup line %q: hierarchy id", ErrInvalid, line)
		}
		e := procEntry{id: id, path: f[2]}
		if f[1] != "" {
			e.controllers = strings.Split(f[1], ",")
		}
		out = append(out, e)
	}
	return out, nil
}

// mount is one cgroup or cgroup2 mount from mountinfo.
type mount struct {
	root, point string
	v2          bool
	// opts are the super options ("rw,memory" or "rw,name=systemd").
	opts []string
}

// has reports whether the v1 mount m is the hierarchy of controller ctl.
func (m mount) has(ctl string) bool {
	for _, o := range m.opts {
		if o == ctl {
			return true
		}
	}
	return false
}

// parseMountinfo returns the cgroup and cgroup2 mounts in the text of a
// mountinfo file, in file order.
func parseMountinfo(text string) ([]mount, error) {
	ms, err := mountinfo.ParseTypes(text, "cgroup", "cgroup2")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var out []mount
	for _, m := range ms {
		out = append(out, mount{root: m.Root, point: m.Point, v2: m.FSType == "cgroup2", opts: m.Opts})
	}
	return out, nil
}

package cgroups

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
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
// mountinfo file, in file order. The format is documented in proc(5):
// "ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER".
func parseMountinfo(text string) ([]mount, error) {
	var out []mount
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("%w: mountinfo line %q", ErrInvalid, line)
		}
		fstype := f[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		m := mount{root: unescape(f[3]), point: unescape(f[4]), v2: fstype == "cgroup2"}
		if sep+3 < len(f) {
			m.opts = strings.Split(f[sep+3], ",")
		}
		out = append(out, m)
	}
	return out, nil
}

// unescape undoes the octal escapes (\040 for a space, \011, \012, \134)
// the kernel writes in mountinfo paths.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

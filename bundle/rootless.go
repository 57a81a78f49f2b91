package bundle

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Rootless describes the unprivileged caller a rootless config is written
// for (Options.Rootless). DetectRootless fills it for the calling process.
type Rootless struct {
	// UID and GID are the caller's host ids, mapped to 0 in the container.
	UID, GID uint32
	// SubUIDs and SubGIDs are the caller's ranges from /etc/subuid and
	// /etc/subgid, mapped from container id 1 on. They are used only when
	// newuidmap and newgidmap are installed (Debian's uidmap package): the
	// runtime needs them to write a mapping of more than the caller's own id.
	SubUIDs, SubGIDs []specs.LinuxIDMapping
	// Cgroup says the caller owns a delegated cgroup v2 subtree the runtime
	// can create the container's cgroup in (the parent of its own cgroup,
	// where runc puts a rootless container's cgroup): only then does the
	// config keep linux.resources.
	Cgroup bool
}

// DetectRootless returns the Rootless of the calling process, or nil when
// its effective uid is 0 (a root config is written then).
func DetectRootless() (*Rootless, error) {
	uid := os.Geteuid()
	if uid == 0 {
		return nil, nil
	}
	r := &Rootless{UID: uint32(uid), GID: uint32(os.Getegid())}
	if haveIDMapTools() {
		name := ""
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			name = u.Username
		}
		var err error
		if r.SubUIDs, err = subIDs("/etc/subuid", name, uid); err != nil {
			return nil, err
		}
		if r.SubGIDs, err = subIDs("/etc/subgid", name, uid); err != nil {
			return nil, err
		}
	}
	r.Cgroup = delegatedCgroup()
	return r, nil
}

// haveIDMapTools says whether newuidmap and newgidmap are on PATH.
func haveIDMapTools() bool {
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false
		}
	}
	return true
}

// subIDs reads the ranges of the user called name (or with uid) from file
// (/etc/subuid format: NAME-or-UID:START:COUNT), as container ids 1, 2...
// on. A missing file means no ranges.
func subIDs(file, name string, uid int) ([]specs.LinuxIDMapping, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []specs.LinuxIDMapping
	next := uint32(1)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != strconv.Itoa(uid)) {
			continue
		}
		start, err1 := strconv.ParseUint(parts[1], 10, 32)
		count, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			continue // a line newuidmap would refuse too
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: next, HostID: uint32(start), Size: uint32(count)})
		next += uint32(count)
	}
	return out, sc.Err()
}

// cgroupRoot is where the cgroup v2 hierarchy is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// delegatedCgroup says whether the caller may make the container's cgroup
// where a rootless runc puts it: on a cgroup v2 host, in the parent of
// the caller's own cgroup, which it owns (cgroup.procs writable and the
// folder writable), as systemd's Delegate=yes hands it over.
func delegatedCgroup() bool {
	var st unix.Statfs_t
	if unix.Statfs(cgroupRoot, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return false
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false
	}
	own := ""
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			own = p
		}
	}
	if own == "" || own == "/" {
		return false
	}
	dir := filepath.Join(cgroupRoot, filepath.Dir(own))
	return unix.Access(dir, unix.W_OK) == nil && unix.Access(filepath.Join(dir, "cgroup.procs"), unix.W_OK) == nil
}

// rootlessSpec turns spec (a root config) into one an unprivileged caller
// can run, as `runc spec --rootless` does: a user namespace mapping r's
// uid and gid to 0 (and the subordinate ranges from 1 on), no network
// namespace (the container shares the caller's network, which it cannot
// configure), /sys bound read-only from the host instead of a new sysfs
// (which needs a network namespace of one's own), no gid= option on
// devpts unless that gid is mapped, and no linux.resources unless r owns
// a delegated cgroup: without one, a resource setting would fail the
// create.
func rootlessSpec(spec *specs.Spec, r *Rootless, resources bool) error {
	if !r.Cgroup && resources {
		return fmt.Errorf("memory and cpu limits need a cgroup, and a rootless container has none without a delegated cgroup v2 subtree: leave the limits out, or run it where systemd delegates one (systemd-run --user --scope -p Delegate=yes)")
	}
	l := spec.Linux
	l.UIDMappings = append([]specs.LinuxIDMapping{{ContainerID: 0, HostID: r.UID, Size: 1}}, r.SubUIDs...)
	l.GIDMappings = append([]specs.LinuxIDMapping{{ContainerID: 0, HostID: r.GID, Size: 1}}, r.SubGIDs...)
	var ns []specs.LinuxNamespace
	for _, n := range l.Namespaces {
		if n.Type != specs.NetworkNamespace && n.Type != specs.UserNamespace {
			ns = append(ns, n)
		}
	}
	l.Namespaces = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
	if r.Cgroup {
		if l.Resources != nil {
			l.Resources.Devices = nil // device rules are the runtime's own in a user namespace
		}
	} else {
		l.Resources = nil
	}
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		switch {
		case m.Destination == "/sys" && m.Type == "sysfs":
			*m = specs.Mount{Destination: "/sys", Type: "none", Source: "/sys",
				Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
		case m.Type == "devpts" || m.Type == "mqueue":
			m.Options = dropUnmappedGID(m.Options, l.GIDMappings)
		}
	}
	return nil
}

// dropUnmappedGID removes a gid=N option whose N no mapping holds.
func dropUnmappedGID(opts []string, maps []specs.LinuxIDMapping) []string {
	var out []string
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "gid="); ok {
			gid, err := strconv.ParseUint(v, 10, 32)
			if err != nil || !mapped(uint32(gid), maps) {
				continue
			}
		}
		out = append(out, o)
	}
	return out
}

func mapped(id uint32, maps []specs.LinuxIDMapping) bool {
	for _, m := range maps {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return true
		}
	}
	return false
}

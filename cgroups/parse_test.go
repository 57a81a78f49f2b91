package cgroups

import (
	"errors"
	"reflect"
	"testing"
)

// This host's own files (cgroup v1 with cpu and cpuacct on separate
// hierarchies, and an empty unified hierarchy).
const hybridMountinfo = `22 1 0:20 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const hybridProc = `9:name=systemd:/
8:pids:/
4:memory:/process_api/c4
2:cpuacct:/
1:cpu:/
0::/
`

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, proc, mountinfo string
		want                  Cgroup
		mode                  Mode
	}{{
		name: "hybrid host, mounts under /sys/fs/cgroup", proc: hybridProc, mountinfo: hybridMountinfo, mode: ModeHybrid,
		want: Cgroup{V1: map[string]string{
			"name=systemd": "/sys/fs/cgroup/systemd", "pids": "/sys/fs/cgroup/pids",
			"memory": "/sys/fs/cgroup/memory/process_api/c4", "cpuacct": "/sys/fs/cgroup/cpuacct", "cpu": "/sys/fs/cgroup/cpu"},
			Unified: "/sys/fs/cgroup/unified"},
	}, {
		name:      "v1 co-mounted cpu,cpuacct, elsewhere than /sys/fs/cgroup, no unified",
		proc:      "3:cpu,cpuacct:/tether/c1\n2:memory:/tether/c1\n",
		mountinfo: "50 1 0:40 / /cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n51 1 0:41 / /cg/memory rw - cgroup none rw,memory\n",
		mode:      ModeV1,
		want:      Cgroup{V1: map[string]string{"cpu": "/cg/cpu,cpuacct/tether/c1", "cpuacct": "/cg/cpu,cpuacct/tether/c1", "memory": "/cg/memory/tether/c1"}},
	}, {
		name:      "v2 only",
		proc:      "0::/system.slice/x.scope\n",
		mountinfo: "38 32 0:33 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
		mode:      ModeV2,
		want:      Cgroup{V1: map[string]string{}, Unified: "/sys/fs/cgroup/system.slice/x.scope"},
	}, {
		name: "v2 in a container: mount root is the namespace's, escaped mount point",
		// a bind mount of a sub-tree: root /kubepods/pod1 mounted at "/my cg"
		proc:      "0::/kubepods/pod1/c2\n",
		mountinfo: "60 1 0:33 /kubepods/pod1 /my\\040cg rw - cgroup2 cgroup2 rw\n",
		mode:      ModeV2,
		want:      Cgroup{V1: map[string]string{}, Unified: "/my cg/c2"},
	}, {
		name:      "v1 hierarchy mounted twice: the mount whose root holds the path wins",
		proc:      "4:memory:/a/b\n",
		mountinfo: "70 1 0:31 /other /x rw - cgroup cgroup rw,memory\n71 1 0:31 /a /y rw - cgroup cgroup rw,memory\n",
		mode:      ModeV1,
		want:      Cgroup{V1: map[string]string{"memory": "/y/b"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.proc, tc.mountinfo)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
			if got.Mode() != tc.mode {
				t.Errorf("mode %v, want %v", got.Mode(), tc.mode)
			}
		})
	}
}

func TestParseNotReachable(t *testing.T) {
	for _, tc := range []struct{ name, proc, mountinfo string }{
		{"cgroup outside the namespace's view", "0::/../../other\n", "38 32 0:33 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"},
		{"path outside the mount's root", "4:memory:/b\n", "70 1 0:31 /a /x rw - cgroup cgroup rw,memory\n"},
		{"hierarchy not mounted", "4:memory:/b\n", "22 1 0:20 / /sys rw,nosuid - sysfs sysfs rw\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.proc, tc.mountinfo)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("err %v, want ErrNotFound", err)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	for _, tc := range []struct{ name, proc, mountinfo string }{
		{"proc line without fields", "memory\n", hybridMountinfo},
		{"proc hierarchy id not a number", "x:memory:/\n", hybridMountinfo},
		{"mountinfo without separator", hybridProc, "30 22 0:27 / /sys/fs/cgroup rw cgroup2 cgroup2 rw\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.proc, tc.mountinfo); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
}

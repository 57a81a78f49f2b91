package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
)

// The cgroup tests run on the host's cgroup v1 (hybrid) in make test and
// on a cgroup-v2-only kernel in make test-cgroup2; each reads the files of
// the version it finds and asserts the values set, not "present".

const cgroupWait = 60 * time.Second // the emulated CPU of make test-cgroup2 is ~6x slower

// cgroupsPathOf reads the bundle's linux.cgroupsPath.
func cgroupsPathOf(t *testing.T, b string) string {
	t.Helper()
	spec, err := bundle.LoadSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		t.Fatalf("bundle %s has no cgroupsPath: testutil gives every bundle one", b)
	}
	return spec.Linux.CgroupsPath
}

// cgroupFile reads one value of the cgroup at path: v1name in the v1
// hierarchy of controller, or v2name on cgroup v2.
func cgroupFile(t *testing.T, path, controller, v1name, v2name string) (string, bool) {
	t.Helper()
	dir, v2, err := testutil.CgroupPathDir(path, controller)
	if err != nil {
		t.Fatal(err)
	}
	name := v1name
	if v2 {
		name = v2name
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)), v2
}

// cgroupHolds reports whether pid is listed in the cgroup.procs of the
// cgroup at path in controller's hierarchy.
func cgroupHolds(t *testing.T, path, controller string, pid int) bool {
	t.Helper()
	procs, _ := cgroupFile(t, path, controller, "cgroup.procs", "cgroup.procs")
	return slices.Contains(strings.Fields(procs), strconv.Itoa(pid))
}

// TestCgroupOwnPerContainer: two suites at once, each with a container
// named "c" (two roots), get one cgroup each, the one their bundle names;
// pausing one freezes it alone (v1 freezer.state, v2 cgroup.freeze and
// cgroup.events). Before bundles had a cgroupsPath both were in the
// cgroup "c" and a pause in one suite froze the other's container.
func TestCgroupOwnPerContainer(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) {
			envs := []*testutil.Env{testutil.NewEnv(t, rt), testutil.NewEnv(t, rt)}
			var pids []int
			var paths []string
			for _, e := range envs {
				b := e.Bundle("sleep", "1000")
				p := cgroupsPathOf(t, b)
				st := runDetached(t, e, "c", b)
				if !cgroupHolds(t, p, "freezer", st.Pid) {
					t.Fatalf("init %d is not in its bundle's cgroup %s", st.Pid, p)
				}
				pids, paths = append(pids, st.Pid), append(paths, p)
			}
			if paths[0] == paths[1] {
				t.Fatalf("both bundles name cgroup %s", paths[0])
			}
			envs[0].MustTether("pause", "c")
			cgroupCheckFrozen(t, paths[0], pids[0], true)
			cgroupCheckFrozen(t, paths[1], pids[1], false)
			envs[0].MustTether("resume", "c")
			cgroupCheckFrozen(t, paths[0], pids[0], false)
			for _, e := range envs {
				e.MustTether("delete", "--force", "c")
			}
			for _, p := range paths {
				if _, _, err := testutil.CgroupPathDir(p, "freezer"); err == nil {
					t.Errorf("cgroup %s is left after delete", p)
				}
			}
		})
	}
}

// cgroupCheckFrozen checks the kernel's freezer for pid, and on v2 also
// the cgroup.freeze the runtime wrote.
func cgroupCheckFrozen(t *testing.T, path string, pid int, want bool) {
	t.Helper()
	if got, err := testutil.CgroupFrozen(pid); err != nil || got != want {
		t.Errorf("cgroup %s: frozen=%v (%v), want %v", path, got, err, want)
	}
	v, v2 := cgroupFile(t, path, "freezer", "freezer.state", "cgroup.freeze")
	wantV := map[bool]string{true: "FROZEN", false: "THAWED"}[want]
	if v2 {
		wantV = map[bool]string{true: "1", false: "0"}[want]
	}
	if v != wantV {
		t.Errorf("cgroup %s: freeze file %q, want %q", path, v, wantV)
	}
}

// TestCgroupLimits: the bundle's memory, pids and CPU limits reach the
// container's own cgroup with the values set (memory.limit_in_bytes or
// memory.max, pids.max, cpu.cfs_quota_us/cfs_period_us or cpu.max), and
// the kernel enforces the pids limit: a container forking past it is
// refused (pids.events max > 0) and never holds more.
func TestCgroupLimits(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		const mem, pids, quota, period = 64 << 20, 16, 50000, 100000
		b := e.Bundle("sh", "-c", "echo up; i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); done; echo forked-all; sleep 1000")
		testutil.EditSpec(t, b, func(s *specs.Spec) {
			q, p := int64(quota), uint64(period)
			s.Linux.Resources = &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: ptr(int64(mem))},
				Pids:   &specs.LinuxPids{Limit: ptr(int64(pids))},
				CPU:    &specs.LinuxCPU{Quota: &q, Period: &p},
			}
		})
		path := cgroupsPathOf(t, b)
		e.MustTether("run", "-d", "--bundle", b, "lim")
		for _, c := range []struct{ controller, v1, v2, want1, want2 string }{
			{"memory", "memory.limit_in_bytes", "memory.max", strconv.Itoa(mem), strconv.Itoa(mem)},
			{"pids", "pids.max", "pids.max", strconv.Itoa(pids), strconv.Itoa(pids)},
			{"cpu", "cpu.cfs_quota_us", "cpu.max", strconv.Itoa(quota), strconv.Itoa(quota) + " " + strconv.Itoa(period)},
		} {
			got, v2 := cgroupFile(t, path, c.controller, c.v1, c.v2)
			want, name := c.want1, c.v1
			if v2 {
				want, name = c.want2, c.v2
			}
			if got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		// the shell forks until the kernel refuses: pids.events counts
		// the refusals, and the cgroup never held more than the limit
		dir, _, err := testutil.CgroupPathDir(path, "pids")
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, cgroupWait, "a fork refused by pids.max (pids.events max > 0)", func() bool {
			n, err := testutil.CgroupKeyed(filepath.Join(dir, "pids.events"), "max")
			return err == nil && n > 0
		})
		if cur, err := os.ReadFile(filepath.Join(dir, "pids.current")); err == nil {
			if n, _ := strconv.Atoi(strings.TrimSpace(string(cur))); n > pids {
				t.Errorf("pids.current %d above pids.max %d", n, pids)
			}
		}
		if strings.Contains(coreLogs(t, e, "lim"), "forked-all") {
			t.Errorf("all 40 forks succeeded under pids.max %d", pids)
		}
		e.MustTether("delete", "--force", "lim")
	})
}

// TestCgroupOOMKill: a container growing past its memory limit is killed
// by the kernel's OOM killer inside its cgroup: its init ends with
// SIGKILL (status 137, as tether wait reports it) and the cgroup counts
// the kill (v2 memory.events oom_kill, v1 memory.oom_control oom_kill).
// The host and the VM have no swap, so the limit alone bounds it.
func TestCgroupOOMKill(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		const mem = 32 << 20
		// each round doubles a shell variable: 64 MiB after 26 rounds
		b := e.Bundle("sh", "-c", "echo up; x=0123456789abcdef; while :; do x=$x$x; done")
		testutil.EditSpec(t, b, func(s *specs.Spec) {
			s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(mem))}}
		})
		path := cgroupsPathOf(t, b)
		e.MustTether("run", "-d", "--bundle", b, "oom")
		r := e.Tether("wait", "oom")
		if r.Code != 137 {
			t.Fatalf("wait: exit %d (%s %s), want 137 (SIGKILL by the OOM killer)", r.Code, r.Stdout, r.Stderr)
		}
		dir, v2, err := testutil.CgroupPathDir(path, "memory")
		if err != nil {
			t.Fatal(err)
		}
		file := "memory.oom_control"
		if v2 {
			file = "memory.events"
		}
		n, err := testutil.CgroupKeyed(filepath.Join(dir, file), "oom_kill")
		if err != nil || n < 1 {
			t.Errorf("%s oom_kill = %d (%v), want at least 1", file, n, err)
		}
		e.MustTether("delete", "oom")
	})
}

func ptr[T any](v T) *T { return &v }

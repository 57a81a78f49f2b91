package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadMountInfo(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mountinfo")
	lines := "22 1 0:21 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw,size=100k\n" +
		"90 22 0:21 /a\\040b/rootfs /run/c\\134d rw master:5 - tmpfs tmpfs rw\n" +
		"31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
	if err := os.WriteFile(f, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := ReadMountInfo(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[1].Root != "/a b/rootfs" || ms[1].Point != `/run/c\d` || ms[1].Dev != "0:21" ||
		ms[2].FSType != "cgroup" || !cgroupMountFor(ms[2], "cpu,cpuacct") || cgroupMountFor(ms[2], "memory") {
		t.Fatalf("parsed %+v", ms)
	}
	if err := os.WriteFile(f, []byte("22 1 0:21 / /tmp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMountInfo(f); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("a line without its separator: %v", err)
	}
}

// TestMountsOf reproduces a container root on a filesystem of its own
// (/tmp on a tmpfs): the bind mount's root field is /x/rootfs, not the
// absolute path, and it must still be found, then gone once unmounted.
func TestMountsOf(t *testing.T) {
	RequireRoot(t)
	fsDir := t.TempDir()
	if err := unix.Mount("tmpfs", fsDir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(fsDir, unix.MNT_DETACH) })
	rootfs, target := filepath.Join(fsDir, "x", "rootfs"), filepath.Join(fsDir, "y")
	for _, d := range []string{rootfs, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if refs, err := MountsOf(rootfs); err != nil || len(refs) != 0 {
		t.Fatalf("before any mount: %q %v", refs, err)
	}
	if err := unix.Mount(rootfs, target, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	refs, err := MountsOf(rootfs)
	if err != nil || len(refs) == 0 || !strings.Contains(refs[0], " /x/rootfs on "+target+" ") {
		t.Fatalf("bind mount of %s on %s: found %q %v", rootfs, target, refs, err)
	}
	if err := unix.Unmount(target, 0); err != nil {
		t.Fatal(err)
	}
	if refs, err := MountsOf(rootfs); err != nil || len(refs) != 0 {
		t.Fatalf("after unmount: %q %v", refs, err)
	}
}

// TestCgroupDirs puts a process in a cgroup of its own, in the first cgroup
// hierarchy mounted (v2 when there is one), and finds that folder back.
func TestCgroupDirs(t *testing.T) {
	RequireRoot(t)
	pts, err := CgroupMountPoints()
	if err != nil || len(pts) == 0 {
		t.Fatalf("no cgroup mount: %v", err)
	}
	ms, _ := ReadMountInfo("/proc/self/mountinfo")
	mnt := pts[0]
	for _, m := range ms {
		if m.FSType == "cgroup2" {
			mnt = m.Point
			break
		}
	}
	dir := filepath.Join(mnt, fmt.Sprintf("tether-testutil-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	dirs, err := CgroupDirs(cmd.Process.Pid)
	if err != nil || !slices.Contains(dirs, dir) {
		t.Fatalf("cgroups of pid %d: %q %v, want %s among them", cmd.Process.Pid, dirs, err, dir)
	}
}

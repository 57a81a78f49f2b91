package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// upgradeSkewCommit is the first commit whose shim can be upgraded in
// place (handoff version 1, the upgrade operation of protocol 1). Every
// later build must take its shims over; never move it forward without
// adding a newer pin beside it.
const upgradeSkewCommit = "980a3ae"

// TestUpgradeAcrossVersions: a container started by the tether and
// tether-shim of upgradeSkewCommit is upgraded in place to today's shim by
// today's CLI: same shim and init pids, /proc/PID/exe today's binary, the
// counter's log without gap or duplicate across the versions, then exec,
// kill, wait and delete through today's shim.
func TestUpgradeAcrossVersions(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireRuntime(t, "runc")
	old := skewBuild(t, upgradeSkewCommit)
	e := testutil.NewEnv(t, "runc")
	id := upgID("xv")
	b := e.Bundle(upgCounter...)
	cmd := exec.Command(filepath.Join(old, "tether"), "--root", e.Root, "--runtime", "runc", "run", "-d", "--bundle", b, id)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tether of %s: run -d: %v: %s", upgradeSkewCommit, err, out)
	}
	ctx := context.Background()
	c, err := e.NewManager().Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(ctx, true)
	testutil.Eventually(t, upgWait, "the counter to reach 500", func() bool { return upgLastCount(t, c) >= 500 })
	before := upgState(t, e, id)
	if exe := upgExe(t, before.ShimPid); exe != filepath.Join(old, "tether-shim") {
		t.Fatalf("the container's shim runs %s, want the old build's", exe)
	}
	today := filepath.Join(e.Bin, "tether-shim")
	r := e.Tether("upgrade", id) // the default: the tether-shim beside today's tether
	if r.Code != 0 {
		t.Fatalf("upgrade of %s's shim to today's: exit %d: %s", upgradeSkewCommit, r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, filepath.Join(old, "tether-shim")) || !strings.Contains(r.Stdout, "-> "+today) {
		t.Errorf("upgrade printed %q, want the old binary -> %s", r.Stdout, today)
	}
	after := upgState(t, e, id)
	if after.Status != runtime.StatusRunning || after.Pid != before.Pid || after.ShimPid != before.ShimPid {
		t.Fatalf("state after the upgrade: %+v, want running with init %d and shim %d", after, before.Pid, before.ShimPid)
	}
	if exe := upgExe(t, after.ShimPid); exe != today {
		t.Errorf("/proc/%d/exe is %s after the upgrade, want %s", after.ShimPid, exe, today)
	}
	mark := upgLastCount(t, c)
	testutil.Eventually(t, upgWait, "the counter to go on after the upgrade", func() bool { return upgLastCount(t, c) >= mark+500 })
	if out := e.MustTether("exec", id, "--", "echo", "today"); out != "today\n" {
		t.Errorf("exec through the upgraded shim printed %q", out)
	}
	e.MustTether("kill", "--signal", "KILL", id)
	if r := e.Tether("wait", id); r.Code != 137 || r.Stdout != "137\n" {
		t.Errorf("wait after the upgrade: %+v, want 137", r)
	}
	upgCheckSequence(t, "log", upgCounts(t, upgLog(t, c)), mark+500)
	e.MustTether("delete", id)
	coreAssertNothingLeft(t, e)
}

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// skewCommit is the last commit before records and protocol got their own
// versions (record format 1, protocol 1): the oldest release whose shims a
// manager of today must still drive. Never move it forward without adding
// a newer pin beside it.
const skewCommit = "3911370"

// skewBuild builds tether and tether-shim of commit rev of this
// repository (git archive into a temporary folder, go build) and returns
// the folder holding them.
func skewBuild(t *testing.T, rev string) string {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s (the skew test needs this repository's history): %v: %s", rev, err, out)
	}
	bin := filepath.Join(src, "bin")
	build := exec.Command("go", "build", "-trimpath", "-o", bin+"/", "./cmd/tether", "./cmd/tether-shim")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tether of %s: %v: %s", rev, err, out)
	}
	return bin
}

// TestVersionSkew starts containers with the binaries of an earlier
// release and drives them with today's manager (CLI and Go API): state,
// logs, exec, pause, resume, kill, wait and delete all work on the old shims, which are
// never replaced or killed for their version.
func TestVersionSkew(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireRuntime(t, "runc")
	old := skewBuild(t, skewCommit)
	e := testutil.NewEnv(t, "runc")
	oldTether := func(args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(old, "tether"), append([]string{"--root", e.Root, "--runtime", "runc"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("old tether %v: %v: %s", args, err, out)
		}
	}
	b := e.Bundle("sh", "-c", "echo from-old; trap 'exit 3' TERM; sleep 1000 & wait")
	oldTether("run", "-d", "--bundle", b, "skew")
	oldTether("run", "-d", "--bundle", e.SameBundle(b), "skew2") // a cgroup of its own
	oldShim := rcvShimOf(t, e, "skew")

	// state, through the CLI and the Go API
	var st runtime.State
	if err := json.Unmarshal([]byte(e.MustTether("state", "skew")), &st); err != nil || st.Status != runtime.StatusRunning || st.ShimPid != oldShim {
		t.Fatalf("state of an old shim's container: %+v, %v (old shim pid %d)", st, err, oldShim)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	states, err := e.NewManager().List(ctx)
	if err != nil || len(states) != 2 || states[0].Status != runtime.StatusRunning || states[1].Status != runtime.StatusRunning {
		t.Fatalf("list: %+v, %v", states, err)
	}
	// logs
	testutil.Eventually(t, 10*time.Second, "output in the log", func() bool {
		return strings.Contains(e.Tether("logs", "skew").Stdout, "from-old")
	})
	// metrics, update and pids were added to protocol 1 after this release: the
	// old shim refuses them, and the manager says why and what to do
	c, err := e.NewManager().Load(ctx, "skew")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if _, err := c.Metrics(ctx); !errors.Is(err, runtime.ErrVersion) || !strings.Contains(err.Error(), "recreate the container") {
		t.Errorf("metrics of an old shim's container: %v, want ErrVersion with a hint", err)
	}
	pids := int64(50)
	if err := c.Update(ctx, &runtime.Resources{Pids: &pids}); !errors.Is(err, runtime.ErrVersion) {
		t.Errorf("update of an old shim's container: %v, want ErrVersion", err)
	}
	if _, err := c.Top(ctx); !errors.Is(err, runtime.ErrVersion) {
		t.Errorf("top of an old shim's container: %v, want ErrVersion", err)
	}
	// exec, foreground and detached, and its wait
	if r := e.Tether("exec", "skew", "--", "sh", "-c", "echo in-exec; exit 5"); r.Code != 5 || !strings.Contains(r.Stdout, "in-exec") {
		t.Fatalf("exec into an old shim's container: exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
	}
	e.MustTether("exec", "-d", "--exec-id", "job", "skew", "--", "sleep", "1000")
	e.MustTether("kill", "--exec-id", "job", "--signal", "KILL", "skew")
	if r := e.Tether("wait", "--exec-id", "job", "skew"); r.Code != 137 {
		t.Fatalf("wait for an exec of an old shim: exit %d, %q", r.Code, r.Stderr)
	}
	// pause and resume
	e.MustTether("pause", "skew2")
	if err := json.Unmarshal([]byte(e.MustTether("state", "skew2")), &st); err != nil || st.Status != runtime.StatusPaused {
		t.Fatalf("state after pausing an old shim's container: %+v, %v", st, err)
	}
	e.MustTether("resume", "skew2")
	if err := json.Unmarshal([]byte(e.MustTether("state", "skew2")), &st); err != nil || st.Status != runtime.StatusRunning {
		t.Fatalf("state after resuming an old shim's container: %+v, %v", st, err)
	}
	// upgrade in place: the old shim has no upgrade operation, so it is
	// refused with the fix, and the old shim serves on
	uc, err := e.NewManager().Load(ctx, "skew2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uc.Upgrade(ctx, filepath.Join(e.Bin, "tether-shim")); !errors.Is(err, runtime.ErrNotUpgradable) ||
		!strings.Contains(err.Error(), "predates in-place upgrades") || !strings.Contains(err.Error(), "restart the container") {
		t.Errorf("upgrade of an old shim: %v, want ErrNotUpgradable saying to restart the container", err)
	}
	if err := json.Unmarshal([]byte(e.MustTether("state", "skew2")), &st); err != nil || st.Status != runtime.StatusRunning || st.ShimPid != rcvShimOf(t, e, "skew2") {
		t.Fatalf("state after a refused upgrade of an old shim: %+v, %v", st, err)
	}
	// and the other way: the old binary as the new one refuses today's
	// handoff (it has no check mode), so today's shim serves on
	skewRefusedTarget(t, e, filepath.Join(old, "tether-shim"))
	// kill and wait: the true status
	e.MustTether("kill", "skew")
	if r := e.Tether("wait", "skew"); r.Code != 3 {
		t.Fatalf("wait: exit %d, %q", r.Code, r.Stderr)
	}
	if rcvShimOf(t, e, "skew") != oldShim {
		t.Fatal("the old shim was replaced")
	}
	// delete, of a stopped one and, forced, of a running one
	e.MustTether("delete", "skew")
	e.MustTether("delete", "--force", "skew2")
	for _, id := range []string{"skew", "skew2"} {
		if _, err := os.Stat(filepath.Join(e.Root, id)); !os.IsNotExist(err) {
			t.Errorf("%s: folder left after delete: %v", id, err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "old shims gone", func() bool { return len(testutil.ShimPids(e.Root)) == 0 })

	// auto-remove came after this release: its shim would ignore the
	// record's auto_remove and keep the container, so a create that asks
	// for it through that shim binary is refused, in one line, and leaves
	// nothing behind
	m, err := runtime.New(runtime.Opts{Root: e.Root, Runtime: "runc", ShimBinary: filepath.Join(old, "tether-shim")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Create(ctx, "skewrm", b, runtime.CreateOpts{AutoRemove: true})
	if !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), "auto-remove") || strings.Contains(err.Error(), "\n") {
		t.Errorf("create with auto-remove through the old shim: %v; want one line, ErrInvalid, naming auto-remove", err)
	}
	if _, err := os.Stat(filepath.Join(e.Root, "skewrm")); !os.IsNotExist(err) {
		t.Errorf("folder left by the refused create: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "the refused create's shim gone", func() bool { return len(testutil.ShimPids(e.Root)) == 0 })
	if list := coreRuntimeList(t, e); len(list) != 0 {
		t.Errorf("runc still knows %v after the refused create", list)
	}
}

// skewRefusedTarget upgrades a container of today's shim to the binary
// old, which cannot read the handoff: the error says so and today's shim
// serves on.
func skewRefusedTarget(t *testing.T, e *testutil.Env, old string) {
	t.Helper()
	ctx := context.Background()
	c, err := e.Manager().Create(ctx, "skew3", e.Bundle("sleep", "1000"), runtime.CreateOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(ctx, true)
	before := rcvShimOf(t, e, "skew3")
	_, err = c.Upgrade(ctx, old)
	if err == nil || !strings.Contains(err.Error(), `refused the handoff`) || !strings.Contains(err.Error(), "flag provided but not defined: -handoff") {
		t.Errorf("upgrade to the old binary: %v, want its refusal of the handoff", err)
	}
	st, err := c.State(ctx)
	if err != nil || st.Status != runtime.StatusCreated || st.ShimPid != before {
		t.Errorf("after the refused upgrade: %+v, %v; want today's shim (pid %d) serving", st, err, before)
	}
	if err := c.Delete(ctx, true); err != nil {
		t.Errorf("delete after the refused upgrade: %v", err)
	}
}

// rcvShimOf is the shim pid in container id's shim.pid.
func rcvShimOf(t *testing.T, e *testutil.Env, id string) int {
	t.Helper()
	sid, err := readPid(filepath.Join(e.Root, id), shimPidFile)
	if err != nil {
		t.Fatal(err)
	}
	return sid.Pid
}

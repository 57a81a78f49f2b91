// Package coretest drives the shim core in-process, as a front end other
// than tether's control socket does (containerd's task service, podman's
// monitor): real runc and crun on a busybox bundle, output into the
// front end's sinks, Pids, exec with its own sinks, kill, wait, delete.
//
// It is a package of its own because shim.New makes the test process a
// child subreaper whose reaper owns every wait4: nothing else in this
// binary may wait for children of its own.
package coretest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/shim"
)

// wait bounds every poll; a hang guard, not a speed assertion.
const wait = 60 * time.Second

// TestCoreInProcess: init's stdout and stderr reach the front end's sinks
// (each only its own stream) and the CRI log; Pids lists init and an
// exec'd process with its child; an exec with NoLog writes its output to
// its sink and leaves no log file; kill and wait give the true statuses;
// delete leaves no folder and no runtime container.
func TestCoreInProcess(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) { coreInProcess(t, rt) })
	}
}

func coreInProcess(t *testing.T, rt string) {
	e := testutil.NewEnv(t, rt)
	id := "core-" + rt
	b := e.BundleWith(bundle.Options{Args: []string{"sh", "-c", "echo to-out; echo to-err >&2; exec sleep 1000"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()

	var out, errs testutil.Buffer
	core, folder := newCore(ctx, t, e, id, b, shim.Options{InitIO: shim.IO{Stdout: &out, Stderr: &errs}})
	events := core.Subscribe()
	pid, err := core.Create(ctx)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	deleted := false
	defer func() {
		if !deleted {
			core.Delete(context.Background(), true)
		}
	}()
	if err := core.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	testutil.Eventually(t, wait, "init's output in the sinks", func() bool {
		return strings.Contains(out.String(), "to-out") && strings.Contains(errs.String(), "to-err")
	})
	if strings.Contains(out.String(), "to-err") || strings.Contains(errs.String(), "to-out") {
		t.Errorf("streams mixed: stdout sink %q, stderr sink %q", out.String(), errs.String())
	}
	testutil.Eventually(t, wait, "init's output in the CRI log", func() bool {
		b, _ := os.ReadFile(folder.Init().LogPath())
		return strings.Contains(string(b), " stdout F to-out") && strings.Contains(string(b), " stderr F to-err")
	})

	// an exec with its own sink and no log file, with a child of its own
	var xout testutil.Buffer
	xpid, _, err := core.Exec(ctx, shim.ExecConfig{ID: "x", IO: shim.IO{NoLog: true, Stdout: &xout},
		Process: specs.Process{Args: []string{"sh", "-c", "sleep 1000 & echo child=$!; wait"}, Cwd: "/",
			Env: []string{"PATH=/bin:/usr/bin"}}})
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	testutil.Eventually(t, wait, "the exec's output in its sink", func() bool { return strings.Contains(xout.String(), "child=") })
	if _, err := os.Stat(folder.Exec("x").LogPath()); !os.IsNotExist(err) {
		t.Errorf("exec with NoLog left a log file: %v", err)
	}
	if strings.Contains(out.String(), "child=") {
		t.Errorf("the exec's output reached init's sink: %q", out.String())
	}
	pids, err := core.Pids(ctx)
	if err != nil {
		t.Fatalf("pids: %v", err)
	}
	if !slices.Contains(pids, pid) || !slices.Contains(pids, xpid) || len(pids) < 3 {
		t.Fatalf("pids %v: want init %d, exec %d and the exec's child", pids, pid, xpid)
	}

	// kill and wait: the true statuses, announced after the records
	if err := core.Kill(ctx, "x", syscall.SIGKILL, false); err != nil {
		t.Fatalf("kill exec: %v", err)
	}
	if x, err := core.Wait(ctx, "x"); err != nil || x.Status != 137 {
		t.Fatalf("wait exec: %+v, %v", x, err)
	}
	if err := core.Kill(ctx, "", syscall.SIGKILL, false); err != nil {
		t.Fatalf("kill init: %v", err)
	}
	x, err := core.Wait(ctx, "")
	if err != nil || x.Status != 137 || x.Pid != pid {
		t.Fatalf("wait init: %+v, %v", x, err)
	}
	if r, err := folder.Init().ReadExit(); err != nil || r.Status != 137 {
		t.Fatalf("init's exit record: %+v, %v", r, err)
	}
	seen := map[string]int{}
	evctx, evcancel := context.WithTimeout(ctx, wait)
	defer evcancel()
	for len(seen) < 2 {
		ev, err := events.Next(evctx)
		if err != nil {
			t.Fatalf("exit events: got %v, want init and exec x: %v", seen, err)
		}
		seen[ev.Exec] = ev.Exit.Status
	}
	if seen[""] != 137 || seen["x"] != 137 {
		t.Errorf("exit events: %v, want 137 for both", seen)
	}

	if err := core.Delete(ctx, false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	deleted = true
	if _, err := os.Stat(filepath.Join(e.Root, id)); !os.IsNotExist(err) {
		t.Errorf("folder left after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Join(e.Root, ".oci", rt), id)); !os.IsNotExist(err) {
		t.Errorf("runtime container left after delete: %v", err)
	}
}

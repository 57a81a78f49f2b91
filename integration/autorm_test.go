package integration

// Auto-remove (run --rm, create --rm): the shim removes the container once
// it has exited, whoever is around; a manager finishes the removal of one
// whose shim died first.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// rmGated is a command that says "up", waits until the file /go exists in
// its root filesystem (the test creates it: the exit comes when the test
// says), then says "bye" and exits with code.
func rmGated(code int) []string {
	return []string{"sh", "-c", fmt.Sprintf("echo up; while [ ! -e /go ]; do sleep 0.05; done; echo bye; exit %d", code)}
}

// rmOpen lets a gated container of a bundle tether wrote in its folder go
// on to its exit.
func rmOpen(t *testing.T, e *testutil.Env, id string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.Root, id, "bundle", "rootfs", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rmRun runs a detached gated auto-remove container (a bundle written in
// its folder) and waits until it is up. env, when set, is added to the
// CLI's environment (crash points, inherited by the shim).
func rmRun(t *testing.T, e *testutil.Env, id string, code int, env ...string) {
	t.Helper()
	cmd := e.Command(append([]string{"run", "-d", "--rm", id, "--"}, rmGated(code)...)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run -d --rm %s: %v: %s", id, err, out)
	}
	coreEventuallyLogs(t, e, id, "up")
}

// rmGone waits until the container's folder is gone and the processes
// named have exited, then checks that no folder, runtime container or shim
// of the root is left.
func rmGone(t *testing.T, e *testutil.Env, id string, idents ...proc.Identity) {
	t.Helper()
	testutil.Eventually(t, coreWait, id+"'s folder to be removed", func() bool {
		_, err := os.Stat(filepath.Join(e.Root, id))
		return os.IsNotExist(err)
	})
	testutil.Eventually(t, coreWait, id+"'s shim to exit", func() bool { return len(testutil.ShimPids(e.Root)) == 0 })
	// A process in the middle of its exit has no command line any more
	// (ShimPids no longer sees it) but is not a zombie yet: give it time.
	for _, id := range idents {
		testutil.Eventually(t, coreWait, fmt.Sprintf("pid %d to exit", id.Pid), func() bool { return !id.Alive() })
	}
	coreAssertNothingLeft(t, e)
	coreOneLine(t, e.Tether("state", id), id, "not found")
}

// rmEvents is the journal of container id since since, as (type, exit
// status) pairs: "created", "started", "exited 3", "deleted"...
func rmEvents(t *testing.T, e *testutil.Env, id, since string) []string {
	t.Helper()
	out := e.MustTether("events", "--since", since, "--until", "0s", "--filter", "id="+id, "--format", "json")
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ev runtime.LifecycleEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("events line %q: %v", sc.Text(), err)
		}
		s := ev.Type
		if ev.ExitStatus != nil {
			s += fmt.Sprintf(" %d", *ev.ExitStatus)
		}
		got = append(got, s)
	}
	return got
}

func rmWantEvents(t *testing.T, e *testutil.Env, id, since string, want ...string) {
	t.Helper()
	if got := rmEvents(t, e, id, since); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events of %s: %q; want %q", id, got, want)
	}
}

// TestAutoRemove: run -d --rm of a command that exits 3: a 'tether wait'
// under way gets 3, another killed with SIGKILL meanwhile changes nothing;
// afterwards the folder (with the bundle written in it), the runtime's
// container, the shim and init are gone, and the journal says created,
// started, exited 3, deleted. A foreground run --rm killed with SIGKILL
// while its container runs: the container is still removed once it exits.
// A foreground run --rm that is not killed exits with the status once the
// container is removed. create --rm then start: the same.
func TestAutoRemove(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		since := time.Now().UTC().Format(time.RFC3339Nano)
		rmRun(t, e, "rm-d", 3)
		idents := coreIdentitiesOf(t, e, "rm-d")
		waiter := e.Command("wait", "rm-d")
		got := coreStartCaptured(t, waiter)
		killed := e.Command("wait", "rm-d")
		if err := killed.Start(); err != nil {
			t.Fatal(err)
		}
		c, err := e.NewManager().Load(t.Context(), "rm-d")
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, coreWait, "both waits to be connected to the shim", func() bool {
			st, err := c.Stats(t.Context())
			return err == nil && st.Conns >= 3 // the two waits and this question
		})
		if st, _ := coreState(t, e, "rm-d"); !st.AutoRemove {
			t.Errorf("state of a --rm container: auto_remove not set: %+v", st)
		}
		killed.Process.Signal(syscall.SIGKILL)
		killed.Wait()
		rmOpen(t, e, "rm-d")
		err = waiter.Wait()
		if code, out := waiter.ProcessState.ExitCode(), got.final(t); code != 3 || out != "3\n" {
			t.Errorf("wait under way: exit %d (%v), output %q; want 3 and \"3\\n\"", code, err, out)
		}
		rmGone(t, e, "rm-d", idents...)
		rmWantEvents(t, e, "rm-d", since, "created", "started", "exited 3", "deleted")

		// The foreground run's CLI killed: the shim removes it anyway.
		fg := e.Command(append([]string{"run", "--rm", "rm-fg", "--"}, rmGated(4)...)...)
		fgOut := coreStartCaptured(t, fg)
		testutil.Eventually(t, coreWait, "the foreground run to stream up", func() bool { return strings.Contains(fgOut.String(), "up") })
		idents = coreIdentitiesOf(t, e, "rm-fg")
		fg.Process.Signal(syscall.SIGKILL)
		fg.Wait()
		rmOpen(t, e, "rm-fg")
		rmGone(t, e, "rm-fg", idents...)
		rmWantEvents(t, e, "rm-fg", since, "created", "started", "exited 4", "deleted")

		// Not killed: the output, the status, and nothing left on return.
		r := e.Tether("run", "--rm", "rm-fg2", "--", "sh", "-c", "echo bye; exit 5")
		if r.Code != 5 || r.Stdout != "bye\n" {
			t.Errorf("run --rm: exit %d, stdout %q; want 5 and %q (stderr %q)", r.Code, r.Stdout, "bye\n", r.Stderr)
		}
		coreAssertNothingLeft(t, e)

		// create --rm, start: removed once it exits, with --bundle too
		// (the bundle, outside the folder, stays).
		b := e.Bundle("sh", "-c", "exit 6")
		e.MustTether("create", "--rm", "--bundle", b, "rm-cr")
		e.MustTether("start", "rm-cr")
		testutil.Eventually(t, coreWait, "rm-cr to be removed", func() bool {
			_, err := os.Stat(filepath.Join(e.Root, "rm-cr"))
			return os.IsNotExist(err)
		})
		rmGone(t, e, "rm-cr")
		if _, err := os.Stat(filepath.Join(b, "config.json")); err != nil {
			t.Errorf("the --bundle folder was touched by the removal: %v", err)
		}
		rmWantEvents(t, e, "rm-cr", since, "created", "started", "exited 6", "deleted")
	})
}

// TestAutoRemoveShimKilled: the shim of a --rm container killed with
// SIGKILL before the exit (no manager runs meanwhile, so nobody adopts
// it), then the container exits: the next manager command finishes the
// removal and reports what it could. 'wait' prints 255 (the status was
// seen by nobody) and says why on stderr; 'list' shows it one last time,
// marked removed, and 'ps -aq' leaves it out. The journal gets the exit
// (from the manager: no shim told it) and deleted. With the shim killed
// after it recorded the exit and before it removed the container (crash
// point), 'wait' gives the true status and the journal has the shim's own
// exit line, not a second one.
func TestAutoRemoveShimKilled(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		since := time.Now().UTC().Format(time.RFC3339Nano)
		for _, id := range []string{"rmk-wait", "rmk-list"} {
			rmRun(t, e, id, 3)
			shim, init := rcvIdent(t, e, id, shimPidFile), rcvIdent(t, e, id, initPidFile)
			rcvKillOnCleanup(t, init)
			rcvKill(t, shim)
			rmOpen(t, e, id)
			testutil.Eventually(t, coreWait, id+"'s init to exit without its shim", func() bool { return !init.Alive() })
		}
		r := e.Tether("wait", "rmk-wait")
		if r.Code != runtime.UnknownExitStatus || r.Stdout != "255\n" || !strings.Contains(r.Stderr, "shim died") || !strings.Contains(r.Stderr, "removed") {
			t.Errorf("wait after the shim died: exit %d, stdout %q, stderr %q; want 255, the reason and that it was removed", r.Code, r.Stdout, r.Stderr)
		}
		r = e.Tether("list")
		if r.Code != 0 || !strings.Contains(r.Stdout, "rmk-list") || !strings.Contains(r.Stdout, "removed") || strings.Contains(r.Stdout, "rmk-wait") {
			t.Errorf("list: exit %d, %q (stderr %q); want rmk-list marked removed, rmk-wait not listed", r.Code, r.Stdout, r.Stderr)
		}
		if out := e.MustTether("ps", "-aq"); out != "" {
			t.Errorf("ps -aq after the removals: %q; want nothing", out)
		}
		for _, id := range []string{"rmk-wait", "rmk-list"} {
			rmGone(t, e, id)
			rmWantEvents(t, e, id, since, "created", "started", "exited 255", "deleted")
		}

		// Killed between the durable exit and the removal.
		rmRun(t, e, "rmk-rec", 3, "TETHER_CRASH_POINT=shim-before-auto-remove")
		shim := rcvIdent(t, e, "rmk-rec", shimPidFile)
		rmOpen(t, e, "rmk-rec")
		testutil.Eventually(t, coreWait, "the shim to die at its crash point", func() bool { return !shim.Alive() })
		r = e.Tether("wait", "rmk-rec")
		if r.Code != 3 || r.Stdout != "3\n" || r.Stderr != "" {
			t.Errorf("wait after the shim died before removing: exit %d, stdout %q, stderr %q; want 3", r.Code, r.Stdout, r.Stderr)
		}
		rmGone(t, e, "rmk-rec")
		rmWantEvents(t, e, "rmk-rec", since, "created", "started", "exited 3", "deleted")
	})
}

// TestAutoRemoveAdopted: the shim of a --rm container killed while it
// runs; a manager command adopts it (a new shim), which removes it when it
// exits, with the true status: an adoption carries auto-remove on.
func TestAutoRemoveAdopted(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		since := time.Now().UTC().Format(time.RFC3339Nano)
		rmRun(t, e, "rma", 3)
		shim, init := rcvIdent(t, e, "rma", shimPidFile), rcvIdent(t, e, "rma", initPidFile)
		rcvKillOnCleanup(t, init)
		rcvKill(t, shim)
		st, _ := coreState(t, e, "rma") // adopts it
		if st.Status != runtime.StatusRunning || st.AdoptedAt == nil || st.ShimPid == shim.Pid || !st.AutoRemove {
			t.Fatalf("state after the shim died: %+v; want running, adopted by a new shim, auto_remove", st)
		}
		adopter := rcvIdent(t, e, "rma", shimPidFile)
		waiter := e.Command("wait", "rma")
		got := coreStartCaptured(t, waiter)
		c, err := e.NewManager().Load(t.Context(), "rma")
		if err != nil {
			t.Fatal(err)
		}
		// The wait must be connected before the container ends: once the
		// adopter removed it, a wait that only starts then finds nothing
		// (seen in the cgroup v2 VM, whose emulated CPU starts the CLI
		// slowly).
		testutil.Eventually(t, coreWait, "the wait to be connected to the adopter", func() bool {
			st, err := c.Stats(t.Context())
			return err == nil && st.Conns >= 2 // the wait and this question
		})
		rmOpen(t, e, "rma")
		waiter.Wait()
		// The adopting shim takes the status from the process events
		// connector (root, kernel 6.6+: this host); 255 is what it
		// records where the kernel does not tell it.
		if code, out := waiter.ProcessState.ExitCode(), got.final(t); code != 3 || out != "3\n" {
			t.Errorf("wait on the adopted container: exit %d, output %q; want 3", code, out)
		}
		rmGone(t, e, "rma", adopter, init)
		rmWantEvents(t, e, "rma", since, "created", "started", "adopted", "exited 3", "deleted")
	})
}

// TestAutoRemoveRefusals: bad uses of --rm are one line with exit 2 and
// make nothing. A checkpoint that would end a --rm container while what a
// restore needs is in its folder (a bundle tether wrote there, or the
// image folder) is refused in one line before CRIU is asked, and the
// container runs on. (A shim binary that predates auto-remove is refused
// by TestVersionSkew.)
func TestAutoRemoveRefusals(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		for _, args := range [][]string{
			{"run", "--rm=maybe", "rmbad", "--", "true"},
			{"exec", "--rm", "rmbad", "--", "true"},
		} {
			r := e.Tether(args...)
			if r.Code != 2 {
				t.Errorf("tether %v: exit %d; want 2", args, r.Code)
			}
			coreOneLine(t, r, "rm")
		}
		coreAssertNothingLeft(t, e)

		rmRun(t, e, "rmck", 0)
		coreOneLine(t, e.Tether("checkpoint", "rmck"), "rmck", "bundle", "--rm")
		b := e.Bundle(rmGated(0)...)
		e.MustTether("run", "-d", "--rm", "--bundle", b, "rmck2")
		coreOneLine(t, e.Tether("checkpoint", "--image-path", filepath.Join(e.Root, "rmck2", "images"), "rmck2"), "rmck2", "image folder", "--rm")
		for _, id := range []string{"rmck", "rmck2"} {
			if st, _ := coreState(t, e, id); st.Status != runtime.StatusRunning {
				t.Errorf("%s after the refused checkpoint: %+v; want it running on", id, st)
			}
			if _, err := os.Stat(filepath.Join(e.Root, ".checkpoints", id)); !os.IsNotExist(err) {
				t.Errorf("%s: image folder made by a refused checkpoint: %v", id, err)
			}
			e.MustTether("delete", "--force", id)
		}
		if _, err := os.Stat(filepath.Join(e.Root, "rmck2", "images")); !os.IsNotExist(err) {
			t.Errorf("image folder made by a refused checkpoint: %v", err)
		}
		coreAssertNothingLeft(t, e)
	})
}

// TestAutoRemoveUpgraded: a --rm container whose shim is upgraded in place
// while it runs is still removed once it exits, by the new image, with
// the true status for a wait under way.
func TestAutoRemoveUpgraded(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		since := time.Now().UTC().Format(time.RFC3339Nano)
		rmRun(t, e, "rmu", 3)
		next := upgNewBinary(t, e)
		e.MustTether("upgrade", "--shim", next, "rmu")
		st, _ := coreState(t, e, "rmu")
		if exe := upgExe(t, st.ShimPid); exe != next || !st.AutoRemove {
			t.Fatalf("after the upgrade: shim runs %s (want %s), state %+v", exe, next, st)
		}
		shim := rcvIdent(t, e, "rmu", shimPidFile)
		waiter := e.Command("wait", "rmu")
		got := coreStartCaptured(t, waiter)
		rmOpen(t, e, "rmu")
		waiter.Wait()
		if code, out := waiter.ProcessState.ExitCode(), got.final(t); code != 3 || out != "3\n" {
			t.Errorf("wait on the upgraded container: exit %d, output %q; want 3", code, out)
		}
		rmGone(t, e, "rmu", shim)
		rmWantEvents(t, e, "rmu", since, "created", "started", "exited 3", "deleted")
	})
}

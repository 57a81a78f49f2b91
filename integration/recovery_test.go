package integration

// The crash-recovery suite: every row of the recovery table in DESIGN.md,
// with real containers (runc, and crun for the main rows), real SIGKILLs of
// managers and shims, and a new manager each time that must find every
// container as it really is. Each test checks states, statuses and pids,
// that no shim leaves zombies, and that after delete nothing is left: no
// folder, no shim serving the root, no container in the runtime's state.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/runtime"
	"github.com/tether-run/tether/shimapi"
)

// rcvWait bounds every poll and every call that could hang. It is a hang
// guard, not a speed assertion: the machine is shared with other suites.
const rcvWait = 60 * time.Second

// rcvSleeperArgs is a container that says ready, then runs until SIGUSR1,
// on which it exits with code 7 (a true status no default could fake).
var rcvSleeperArgs = []string{"sh", "-c", `trap "exit 7" USR1; echo ready; while :; do sleep 1 & wait $!; done`}

// rcvEach runs f as one subtest per OCI runtime in rts, each with a fresh root.
func rcvEach(t *testing.T, rts []string, f func(t *testing.T, e *testutil.Env)) {
	t.Helper()
	for _, rt := range rts {
		t.Run(rt, func(t *testing.T) { f(t, testutil.NewEnv(t, rt)) })
	}
}

var (
	rcvBoth = testutil.Runtimes
	rcvRunc = []string{"runc"}
)

// rcvStart runs a detached sleeper container and waits until it said ready.
func rcvStart(t *testing.T, e *testutil.Env, id string) {
	t.Helper()
	e.MustTether("run", "-d", "--bundle", e.Bundle(rcvSleeperArgs...), id)
	rcvLogHas(t, e, id, "ready")
}

// rcvLogHas waits until the container's log holds want.
func rcvLogHas(t *testing.T, e *testutil.Env, id, want string) {
	t.Helper()
	testutil.Eventually(t, rcvWait, id+" to log "+want, func() bool {
		return strings.Contains(e.Tether("logs", id).Stdout, want)
	})
}

// rcvIdent reads a recorded identity, failing the test if it is unreadable.
func rcvIdent(t *testing.T, e *testutil.Env, id, name string) proc.Identity {
	t.Helper()
	ident, err := readPid(filepath.Join(e.Root, id), name)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return ident
}

// rcvKill SIGKILLs the process ident names and waits until it is gone.
func rcvKill(t *testing.T, ident proc.Identity) {
	t.Helper()
	if err := ident.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill pid %d: %v", ident.Pid, err)
	}
	testutil.Eventually(t, rcvWait, fmt.Sprintf("pid %d to die", ident.Pid), func() bool { return !ident.Alive() })
}

// rcvKillOnCleanup makes sure the process is gone when the test ends,
// whatever happened (for processes the test made unreachable to tether).
func rcvKillOnCleanup(t *testing.T, ident proc.Identity) {
	t.Cleanup(func() {
		ident.Signal(syscall.SIGCONT)
		ident.Signal(syscall.SIGKILL)
	})
}

// rcvSignal loads id with m and signals its init.
func rcvSignal(t *testing.T, m *runtime.Manager, id string, sig syscall.Signal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rcvWait)
	defer cancel()
	c, err := m.Load(ctx, id)
	if err == nil {
		err = c.Kill(ctx, sig, false)
	}
	if err != nil {
		t.Fatalf("kill %s: %v", id, err)
	}
}

// rcvState loads id with m and returns its state.
func rcvState(t *testing.T, m *runtime.Manager, id string) *runtime.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rcvWait)
	defer cancel()
	c, err := m.Load(ctx, id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatalf("state %s: %v", id, err)
	}
	return st
}

// rcvList lists with m, failing the test if List hangs.
func rcvList(t *testing.T, m *runtime.Manager) map[string]*runtime.State {
	t.Helper()
	type result struct {
		states []*runtime.State
		err    error
	}
	done := make(chan result, 1)
	go func() {
		states, err := m.List(context.Background())
		done <- result{states, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("list: %v", r.err)
		}
		out := map[string]*runtime.State{}
		for _, st := range r.states {
			out[st.ID] = st
		}
		return out
	case <-time.After(rcvWait):
		t.Fatalf("List did not return in %v: a wedged shim hangs the manager", rcvWait)
		return nil
	}
}

// rcvWantStopped checks a stopped state with the given exit status.
func rcvWantStopped(t *testing.T, st *runtime.State, status int, reason string) {
	t.Helper()
	if st.Status != runtime.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != status {
		t.Fatalf("%s: %+v, want stopped with status %d", st.ID, st, status)
	}
	if !strings.Contains(st.Reason, reason) {
		t.Fatalf("%s: reason %q, want it to mention %q", st.ID, st.Reason, reason)
	}
}

// rcvWantUnknown checks an unknown state whose reason mentions every want.
func rcvWantUnknown(t *testing.T, st *runtime.State, wants ...string) {
	t.Helper()
	if st == nil || st.Status != runtime.StatusUnknown || st.ExitStatus != nil {
		t.Fatalf("%+v, want unknown without an exit status", st)
	}
	for _, w := range wants {
		if !strings.Contains(st.Reason, w) {
			t.Fatalf("%s: reason %q, want it to mention %q", st.ID, st.Reason, w)
		}
	}
}

// rcvWaitCode runs tether wait and returns its exit code and output.
func rcvWaitCode(t *testing.T, e *testutil.Env, id string) (int, string) {
	t.Helper()
	r := e.Tether("wait", id)
	return r.Code, strings.TrimSpace(r.Stdout)
}

// rcvExitRecorded waits until the container's exit record exists.
func rcvExitRecorded(t *testing.T, e *testutil.Env, id string) {
	t.Helper()
	path := filepath.Join(e.Root, id, exitFile)
	testutil.Eventually(t, rcvWait, id+"'s exit record", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

// rcvNoZombies checks that the shim of id reaps its children: none stays
// a zombie (one may be caught for a moment between exit and reaping).
func rcvNoZombies(t *testing.T, e *testutil.Env, id string) {
	t.Helper()
	sid := rcvIdent(t, e, id, shimPidFile)
	testutil.Eventually(t, rcvWait, fmt.Sprintf("no zombies under shim %d", sid.Pid), func() bool {
		return len(testutil.ZombieChildren(sid.Pid)) == 0
	})
}

// rcvRuntimeList asks the OCI runtime which containers its root holds.
func rcvRuntimeList(t *testing.T, e *testutil.Env, rt string) []string {
	t.Helper()
	root := filepath.Join(e.Root, ".oci", rt)
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := exec.Command(rt, "--root", root, "list", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("%s list: %v: %s", rt, err, out)
	}
	return strings.Fields(string(out))
}

// rcvAssertClean checks that nothing is left of any container: no folder
// in the root, no shim serving it, no container in any runtime's state.
func rcvAssertClean(t *testing.T, e *testutil.Env) {
	t.Helper()
	testutil.Eventually(t, rcvWait, "every shim of the root to exit", func() bool {
		return len(testutil.ShimPids(e.Root)) == 0
	})
	ents, _ := os.ReadDir(e.Root)
	for _, ent := range ents {
		if ent.Name() != ".oci" && !testutil.IsJournal(ent.Name()) {
			t.Errorf("%s left in the root", ent.Name())
		}
	}
	for _, rt := range testutil.Runtimes {
		if list := rcvRuntimeList(t, e, rt); len(list) != 0 {
			t.Errorf("%s still knows containers %v", rt, list)
		}
	}
}

// rcvEditJSON rewrites a record in place (not atomically: tests only).
func rcvEditJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	if b, err = json.Marshal(v); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rcvNoAdoptManager is a fresh manager with adoption off.
func rcvNoAdoptManager(t *testing.T, e *testutil.Env) *runtime.Manager {
	t.Helper()
	m, err := runtime.New(runtime.Opts{Root: e.Root, Runtime: e.Runtime,
		ShimBinary: filepath.Join(e.Bin, "tether-shim"), NoAdopt: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rcvUnrelated starts a host process that has nothing to do with tether
// and returns its identity; it is killed and reaped when the test ends.
// Any signal tether could send it (TERM, KILL, USR1) would end it.
func rcvUnrelated(t *testing.T) proc.Identity {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ident, err := proc.Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

// TestRecoveryReattach: a new manager (and each CLI call, a manager of its
// own) finds a running container with the same pids, and state, exec,
// kill, wait, logs and delete work on it as if nothing had restarted.
func TestRecoveryReattach(t *testing.T) {
	rcvEach(t, rcvBoth, func(t *testing.T, e *testutil.Env) {
		rcvStart(t, e, "c1")
		before := rcvState(t, e.Manager(), "c1")
		m := e.NewManager()
		if st := rcvList(t, m)["c1"]; st == nil || st.Status != runtime.StatusRunning || st.Pid != before.Pid || st.ShimPid != before.ShimPid {
			t.Fatalf("new manager lists %+v, want running with pid %d, shim pid %d", st, before.Pid, before.ShimPid)
		}
		if out := e.MustTether("exec", "c1", "--", "echo", "from-exec"); !strings.Contains(out, "from-exec") {
			t.Fatalf("exec printed %q", out)
		}
		c, err := m.Load(context.Background(), "c1")
		if err != nil {
			t.Fatal(err)
		}
		waited := make(chan *runtime.ExitRecord, 1)
		go func() {
			exit, err := c.Wait(context.Background())
			if err != nil {
				t.Error(err)
			}
			waited <- exit
		}()
		rcvSignal(t, e.NewManager(), "c1", syscall.SIGUSR1)
		exit := <-waited
		if exit == nil || exit.Status != 7 || exit.ExitedAt.IsZero() {
			t.Fatalf("wait from the new manager: %+v, want status 7 with a time", exit)
		}
		rcvWantStopped(t, rcvState(t, e.NewManager(), "c1"), 7, "")
		rcvLogHas(t, e, "c1", "ready")
		rcvNoZombies(t, e, "c1")
		if err := c.Delete(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		rcvAssertClean(t, e)
	})
}

// TestRecoveryExitWhileNoManager: containers that end while no manager
// runs (a normal exit, and a death by signal from outside) are reported
// stopped with their true status and exit time, from the record their
// shim wrote; wait returns it at once; the shim reaped them.
func TestRecoveryExitWhileNoManager(t *testing.T) {
	rcvEach(t, rcvBoth, func(t *testing.T, e *testutil.Env) {
		e.MustTether("run", "-d", "--bundle", e.Bundle("sh", "-c", "echo bye; exit 3"), "code")
		rcvStart(t, e, "signal")
		rcvKill(t, rcvIdent(t, e, "signal", initPidFile))
		rcvExitRecorded(t, e, "code")
		rcvExitRecorded(t, e, "signal")
		m := e.NewManager()
		for id, want := range map[string]int{"code": 3, "signal": 137} {
			st := rcvState(t, m, id)
			rcvWantStopped(t, st, want, "")
			if st.ExitedAt == nil || st.ShimPid == 0 {
				t.Fatalf("%s: %+v, want an exit time and a live shim", id, st)
			}
			c, err := m.Load(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			exit, err := c.Wait(context.Background())
			if err != nil || exit.Status != want || !exit.ExitedAt.Equal(*st.ExitedAt) || exit.Reason != "" {
				t.Fatalf("%s: wait gave %+v (%v), want status %d at %v", id, exit, err, want, st.ExitedAt)
			}
			if code, out := rcvWaitCode(t, e, id); code != want || out != strconv.Itoa(want) {
				t.Fatalf("%s: tether wait exited %d printing %q, want %d", id, code, out, want)
			}
			rcvNoZombies(t, e, id)
			e.MustTether("delete", id)
		}
		rcvLogsOf(t, e) // nothing to read: both gone
		rcvAssertClean(t, e)
	})
}

// rcvLogsOf checks that a deleted container is gone for the CLI too.
func rcvLogsOf(t *testing.T, e *testutil.Env) {
	t.Helper()
	if r := e.Tether("state", "code"); r.Code == 0 {
		t.Fatalf("state of a deleted container succeeded: %s", r.Stdout)
	}
}

// TestRecoveryWatch: a subscription delivers the exit of every container
// in the root, including those that ended before it started and those
// created after; each exactly once per subscription; a new subscription
// delivers again every exit not yet acknowledged by delete, with the same
// status and time.
func TestRecoveryWatch(t *testing.T) {
	rcvEach(t, rcvRunc, func(t *testing.T, e *testutil.Env) {
		first := rcvWatchFirst(t, e)
		e.MustTether("delete", "before") // acknowledged
		rcvWatchAgain(t, e, first)
		for _, id := range []string{"running", "after", "lost", "adopted"} {
			e.MustTether("delete", id)
		}
		rcvAssertClean(t, e)
	})
}

// rcvWatchFirst subscribes and collects one exit of each kind: ended
// before, ended while subscribed, created after, lost, adopted.
func rcvWatchFirst(t *testing.T, e *testutil.Env) map[string]runtime.Event {
	e.MustTether("run", "-d", "--bundle", e.Bundle("sh", "-c", "exit 4"), "before")
	rcvExitRecorded(t, e, "before")
	rcvStart(t, e, "running")
	rcvStart(t, e, "lost")
	rcvStart(t, e, "adopted")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := e.NewManager().Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]runtime.Event{}
	rcvCollect(t, events, first, "before")
	rcvSignal(t, e.NewManager(), "running", syscall.SIGUSR1)
	rcvCollect(t, events, first, "running")
	e.MustTether("run", "-d", "--bundle", e.Bundle("sh", "-c", "exit 5"), "after")
	rcvCollect(t, events, first, "after")
	// init dies under a stopped shim, which is then killed before it
	// could reap it: nobody saw the status, and no init is left to adopt.
	rcvLoseExit(t, e, "lost")
	rcvCollect(t, events, first, "lost")
	// Its shim dies while the subscription waits on it: the init is
	// adopted and its exit still delivered.
	old := rcvIdent(t, e, "adopted", shimPidFile)
	rcvKill(t, old)
	// Adopted means served: the new shim writes shim.pid before it has
	// taken the init over, and answers "still being created" until then.
	testutil.Eventually(t, rcvWait, "the orphan to be adopted", func() bool {
		sid, err := readPid(filepath.Join(e.Root, "adopted"), shimPidFile)
		if err != nil || sid.Pid == old.Pid || !sid.Alive() {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), rcvWait)
		defer cancel()
		c, err := e.NewManager().Load(ctx, "adopted")
		if err != nil {
			return false
		}
		st, err := c.State(ctx)
		return err == nil && st.Status == runtime.StatusRunning && st.ShimPid == sid.Pid
	})
	rcvSignal(t, e.NewManager(), "adopted", syscall.SIGUSR1)
	rcvCollect(t, events, first, "adopted")
	adopted := 7 // the true status, from the process events connector
	if ev := first["adopted"]; !exitEventsObservable() && ev.Exit != nil && strings.Contains(ev.Exit.Reason, "not observable") {
		adopted = runtime.UnknownExitStatus // where that is not available
	}
	for id, want := range map[string]int{"before": 4, "running": 7, "after": 5, "lost": runtime.UnknownExitStatus, "adopted": adopted} {
		if ev := first[id]; ev.Err != nil || ev.Exit == nil || ev.Exit.Status != want {
			t.Fatalf("%s: event %+v, want status %d", id, ev, want)
		}
	}
	if !strings.Contains(first["lost"].Exit.Reason, "unknown") {
		t.Fatalf("lost: reason %q, want it to say the status is unknown", first["lost"].Exit.Reason)
	}
	cancel()
	for ev := range events {
		t.Fatalf("second event for %s in one subscription: %+v", ev.ID, ev)
	}
	return first
}

// rcvWatchAgain subscribes again: every exit not deleted comes again,
// with the same status and time; the deleted one does not.
func rcvWatchAgain(t *testing.T, e *testutil.Env, first map[string]runtime.Event) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := e.NewManager().Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := map[string]runtime.Event{}
	rcvCollect(t, events, second, "running", "after", "lost", "adopted")
	for id, ev := range second {
		f := first[id]
		if ev.Exit.Status != f.Exit.Status || (!f.Exit.ExitedAt.IsZero() && !ev.Exit.ExitedAt.Equal(f.Exit.ExitedAt)) {
			t.Fatalf("%s: delivered as %+v, then as %+v", id, f.Exit, ev.Exit)
		}
	}
	if _, ok := second["before"]; ok {
		t.Fatal("a deleted container's exit was delivered again")
	}
	cancel()
	for ev := range events {
		t.Fatalf("unexpected event %+v", ev)
	}
}

// rcvLoseExit kills init and its shim so that no exit is recorded.
func rcvLoseExit(t *testing.T, e *testutil.Env, id string) {
	t.Helper()
	sid, init := rcvIdent(t, e, id, shimPidFile), rcvIdent(t, e, id, initPidFile)
	rcvKillOnCleanup(t, sid)
	if err := sid.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	rcvKill(t, init)
	rcvKill(t, sid)
}

// rcvCollect reads events into got until every id in ids has one.
func rcvCollect(t *testing.T, events <-chan runtime.Event, got map[string]runtime.Event, ids ...string) {
	t.Helper()
	timeout := time.After(rcvWait)
	for {
		missing := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { _, ok := got[id]; return ok })
		if len(missing) == 0 {
			return
		}
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("events closed before %v arrived", missing)
			}
			if _, dup := got[ev.ID]; dup {
				t.Fatalf("second event for %s in one subscription: %+v", ev.ID, ev)
			}
			got[ev.ID] = ev
		case <-timeout:
			t.Fatalf("no event for %v after %v", missing, rcvWait)
		}
	}
}

// TestRecoveryInterruptedWait: a tether wait killed with SIGKILL and run
// again returns the container's true status whether the container ended
// before the new wait, while it started, or after it was waiting.
func TestRecoveryInterruptedWait(t *testing.T) {
	rcvEach(t, rcvRunc, func(t *testing.T, e *testutil.Env) {
		for _, when := range []string{"before", "during", "after"} {
			t.Run(when, func(t *testing.T) { rcvInterruptedWait(t, e, when) })
		}
	})
}

func rcvInterruptedWait(t *testing.T, e *testutil.Env, when string) {
	rcvStart(t, e, when)
	waiter := rcvStartWait(t, e, when, nil)
	if err := waiter.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waiter.Wait()
	if st := rcvState(t, e.NewManager(), when); st.Status != runtime.StatusRunning {
		t.Fatalf("killing a waiter changed the container: %+v", st)
	}
	var r testutil.Result
	switch when {
	case "before":
		rcvSignal(t, e.NewManager(), when, syscall.SIGUSR1)
		rcvExitRecorded(t, e, when)
		r = e.Tether("wait", when)
	case "during":
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			r = e.Tether("wait", when)
		}()
		e.MustTether("kill", "--signal", "USR1", when)
		wg.Wait()
	case "after":
		var out strings.Builder
		w := rcvStartWait(t, e, when, &out)
		rcvSignal(t, e.NewManager(), when, syscall.SIGUSR1)
		err := w.Wait()
		r.Stdout, r.Code = out.String(), w.ProcessState.ExitCode()
		if err != nil && r.Code <= 0 {
			t.Fatal(err)
		}
	}
	if r.Code != 7 || strings.TrimSpace(r.Stdout) != "7" {
		t.Fatalf("restarted wait: exit %d, printed %q (%s), want 7", r.Code, r.Stdout, r.Stderr)
	}
	rcvNoZombies(t, e, when)
	e.MustTether("delete", when)
}

// rcvStartWait starts tether wait in its own process group and returns
// once it has dialed the shim (the CLI opens no other socket).
func rcvStartWait(t *testing.T, e *testutil.Env, id string, stdout io.Writer) *exec.Cmd {
	t.Helper()
	cmd := e.Command("wait", id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	testutil.Eventually(t, rcvWait, "tether wait to reach the shim", func() bool { return rcvSockets(cmd.Process.Pid) > 0 })
	return cmd
}

// rcvSockets counts the sockets a process holds.
func rcvSockets(pid int) int {
	n := 0
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, ent := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, ent.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// TestRecoveryShimKilled: the shim is killed with SIGKILL. With an exit
// record the container is stopped with that status; without one and with
// init gone, stopped with the unknown status (255, never 0) and a reason;
// without one and with init alive, a new shim adopts it (same init pid,
// new shim pid) and exec, kill, wait and delete work; with adoption off
// it is unknown, plain delete refuses and delete --force clears it.
func TestRecoveryShimKilled(t *testing.T) {
	rcvEach(t, rcvBoth, func(t *testing.T, e *testutil.Env) {
		t.Run("exit-record", func(t *testing.T) { rcvShimKilledAfterExit(t, e) })
		t.Run("init-gone", func(t *testing.T) { rcvShimAndInitKilled(t, e) })
		t.Run("adopt", func(t *testing.T) { rcvAdopt(t, e) })
		if e.Runtime == "runc" {
			t.Run("adopt-race", func(t *testing.T) { rcvAdoptRace(t, e) })
			t.Run("no-adopt", func(t *testing.T) { rcvNoAdopt(t, e) })
		}
	})
}

func rcvShimKilledAfterExit(t *testing.T, e *testutil.Env) {
	e.MustTether("run", "-d", "--bundle", e.Bundle("sh", "-c", "exit 3"), "rec")
	rcvExitRecorded(t, e, "rec")
	rcvKill(t, rcvIdent(t, e, "rec", shimPidFile))
	st := rcvState(t, e.NewManager(), "rec")
	rcvWantStopped(t, st, 3, "")
	if st.ExitedAt == nil {
		t.Fatalf("%+v: want the recorded exit time", st)
	}
	if code, _ := rcvWaitCode(t, e, "rec"); code != 3 {
		t.Fatalf("wait: %d, want 3", code)
	}
	e.MustTether("delete", "rec")
	rcvAssertClean(t, e)
}

func rcvShimAndInitKilled(t *testing.T, e *testutil.Env) {
	rcvStart(t, e, "gone")
	init := rcvIdent(t, e, "gone", initPidFile)
	rcvLoseExit(t, e, "gone")
	st := rcvState(t, e.NewManager(), "gone")
	rcvWantStopped(t, st, runtime.UnknownExitStatus, "shim died")
	if st.Pid != init.Pid {
		t.Fatalf("pid %d, want the recorded %d", st.Pid, init.Pid)
	}
	if code, out := rcvWaitCode(t, e, "gone"); code != runtime.UnknownExitStatus || out != "255" {
		t.Fatalf("wait: exit %d printing %q, want 255", code, out)
	}
	if pids := testutil.ShimPids(e.Root); len(pids) != 0 {
		t.Fatalf("shims %v were started for a container whose init is gone", pids)
	}
	e.MustTether("delete", "gone")
	rcvAssertClean(t, e)
}

func rcvAdopt(t *testing.T, e *testutil.Env) {
	b := e.Bundle("sh", "-c", `trap "" PIPE; trap "exit 7" USR1; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1 & wait $!; done`)
	e.MustTether("run", "-d", "--bundle", b, "orphan")
	rcvLogHas(t, e, "orphan", "tick 1")
	e.MustTether("exec", "-d", "--exec-id", "job", "orphan", "--", "sleep", "1000")
	init := rcvIdent(t, e, "orphan", initPidFile)
	job, err := readPid(filepath.Join(e.Root, "orphan", execDir), "job.pid")
	if err != nil {
		t.Fatal(err)
	}
	old := rcvIdent(t, e, "orphan", shimPidFile)
	if st := rcvState(t, e.NewManager(), "orphan"); st.AdoptedAt != nil {
		t.Fatalf("a container its own shim created says adopted_at %v", st.AdoptedAt)
	}
	rcvKill(t, old)
	killed := time.Now()
	st := rcvState(t, e.NewManager(), "orphan")
	if st.Status != runtime.StatusRunning || st.Pid != init.Pid || st.ShimPid == old.Pid || st.ShimPid == 0 {
		t.Fatalf("after the shim's death: %+v, want running with init pid %d under a new shim", st, init.Pid)
	}
	if st.AdoptedAt == nil || st.AdoptedAt.Before(killed.Add(-time.Second)) || st.AdoptedAt.After(time.Now()) {
		t.Fatalf("adopted_at %v, want the time of the adoption (after %v)", st.AdoptedAt, killed)
	}
	if args := rcvCmdline(st.ShimPid); !slices.Contains(args, shimapi.ServeAdopt) {
		t.Fatalf("new shim's command line %q, want %s", args, shimapi.ServeAdopt)
	}
	if err := init.Check(); err != nil {
		t.Fatalf("init after adoption: %v", err)
	}
	if out := e.MustTether("exec", "orphan", "--", "echo", "adopted-exec"); !strings.Contains(out, "adopted-exec") {
		t.Fatalf("exec through the adopting shim printed %q", out)
	}
	// The exec'd process of the dead shim is adopted too.
	if i := slices.IndexFunc(st.Execs, func(x runtime.ExecState) bool { return x.ID == "job" }); i < 0 ||
		st.Execs[i].Status != runtime.StatusRunning || st.Execs[i].Pid != job.Pid {
		t.Fatalf("execs after adoption: %+v, want job running with pid %d", st.Execs, job.Pid)
	}
	e.MustTether("kill", "--exec-id", "job", "--signal", "KILL", "orphan")
	// 255 is right only where the host hides exit events from the shim.
	if r := e.Tether("wait", "--exec-id", "job", "orphan"); r.Code != 137 && (exitEventsObservable() || r.Code != runtime.UnknownExitStatus) {
		t.Fatalf("wait for the adopted exec: exit %d (%s), want 137", r.Code, r.Stderr)
	}
	// Output written after the adoption reaches the log again.
	n := strings.Count(e.Tether("logs", "orphan").Stdout, "tick")
	testutil.Eventually(t, rcvWait, "ticks after adoption in the log", func() bool {
		return strings.Count(e.Tether("logs", "orphan").Stdout, "tick") > n+2
	})
	e.MustTether("kill", "--signal", "USR1", "orphan")
	code, _ := rcvWaitCode(t, e, "orphan")
	st = rcvState(t, e.NewManager(), "orphan")
	// The process events connector gives the true status; without it the
	// status is unknown, and says so.
	if code == 7 || exitEventsObservable() {
		rcvWantStopped(t, st, 7, "")
	} else {
		rcvWantStopped(t, st, runtime.UnknownExitStatus, "not observable")
		t.Logf("exit status not observable here: %s", st.Reason)
	}
	rcvNoZombies(t, e, "orphan")
	e.MustTether("delete", "orphan")
	rcvAssertClean(t, e)
}

// rcvCmdline reads a process's arguments.
func rcvCmdline(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func rcvAdoptRace(t *testing.T, e *testutil.Env) {
	rcvStart(t, e, "race")
	init := rcvIdent(t, e, "race", initPidFile)
	rcvKill(t, rcvIdent(t, e, "race", shimPidFile))
	var wg sync.WaitGroup
	states := make([]*runtime.State, 6)
	for i := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 { // CLI managers, each its own process
				var st runtime.State
				r := e.Tether("state", "race")
				if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
					t.Errorf("tether state: %v: %s", err, r.Stderr)
				}
				states[i] = &st
				return
			}
			m, err := runtime.New(runtime.Opts{Root: e.Root, Runtime: e.Runtime, ShimBinary: filepath.Join(e.Bin, "tether-shim")})
			if err != nil {
				t.Error(err)
				return
			}
			states[i] = rcvList(t, m)["race"]
		}()
	}
	wg.Wait()
	if pids := testutil.ShimPids(e.Root); len(pids) != 1 {
		t.Fatalf("shims serving the root after concurrent loads: %v, want exactly one", pids)
	}
	for i, st := range states {
		if st == nil || st.Status != runtime.StatusRunning || st.Pid != init.Pid {
			t.Fatalf("manager %d saw %+v, want running with pid %d", i, st, init.Pid)
		}
	}
	e.MustTether("delete", "--force", "race")
	rcvAssertClean(t, e)
}

func rcvNoAdopt(t *testing.T, e *testutil.Env) {
	rcvStart(t, e, "noadopt")
	init := rcvIdent(t, e, "noadopt", initPidFile)
	rcvKill(t, rcvIdent(t, e, "noadopt", shimPidFile))
	m := rcvNoAdoptManager(t, e)
	rcvWantUnknown(t, rcvState(t, m, "noadopt"), "still runs", "adoption is off")
	// The same through the CLI: state, list and a refused plain delete.
	var st runtime.State
	if err := json.Unmarshal([]byte(e.MustTether("--no-adopt", "state", "noadopt")), &st); err != nil {
		t.Fatal(err)
	}
	rcvWantUnknown(t, &st, "still runs", "adoption is off")
	// The library says what is wrong and what can be done as data; the
	// CLI names the command.
	const hint = "'tether delete --force noadopt'"
	if lib := rcvState(t, m, "noadopt"); strings.Contains(lib.Reason, "tether ") || lib.Remedy != runtime.RemedyForceDelete {
		t.Fatalf("library state %+v: want a reason naming no command and the forced delete as remedy", lib)
	}
	if !strings.Contains(st.Reason, hint) {
		t.Fatalf("CLI state reason %q does not name %s", st.Reason, hint)
	}
	if out := e.MustTether("list", "--no-adopt"); !strings.Contains(out, "unknown") {
		t.Fatalf("list --no-adopt:\n%s", out)
	}
	if r := e.Tether("--no-adopt", "delete", "noadopt"); r.Code == 0 || !strings.Contains(r.Stderr, hint) {
		t.Fatalf("plain delete of an orphan: exit %d, %q; want a refusal naming %s", r.Code, r.Stderr, hint)
	}
	ctx := context.Background()
	c, err := m.Load(ctx, "noadopt")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, false); !errors.Is(err, runtime.ErrRunning) || strings.Contains(err.Error(), "tether ") ||
		runtime.RemedyOf(err) == nil || runtime.RemedyOf(err).Remedy != runtime.RemedyForceDelete {
		t.Fatalf("plain delete of an orphan: %v, want ErrRunning with the forced delete as remedy and no command", err)
	}
	if err := init.Check(); err != nil {
		t.Fatalf("init after a refused delete: %v", err)
	}
	if pids := testutil.ShimPids(e.Root); len(pids) != 0 {
		t.Fatalf("adoption is off but shims %v serve the root", pids)
	}
	if err := c.Delete(ctx, true); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, rcvWait, "init to be killed", func() bool { return !init.Alive() })
	rcvAssertClean(t, e)
}

// TestRecoveryCrashPoints: the manager is killed (SIGKILL, by itself) at
// each named point of create and start, and the shim at its own points.
// The next manager finds each container in a state it can handle, and
// delete --force leaves nothing: no folder, no shim, no runtime container.
func TestRecoveryCrashPoints(t *testing.T) {
	rcvEach(t, rcvBoth, func(t *testing.T, e *testutil.Env) {
		points := []string{"after-mkdir", "after-record", "after-shim-spawn", "after-runtime-create",
			"after-start", "shim-after-runtime-create", "shim-after-init-pid", "after-shim-spawn,shim-after-init-pid"}
		if e.Runtime == "crun" {
			points = []string{"after-shim-spawn", "after-runtime-create", "after-shim-spawn,shim-after-init-pid"}
		}
		for i, point := range points {
			t.Run(point, func(t *testing.T) { rcvCrashAt(t, e, fmt.Sprintf("cp%d", i), point) })
		}
	})
}

func rcvCrashAt(t *testing.T, e *testutil.Env, id, point string) {
	args := []string{"create", "--bundle", e.Bundle(rcvSleeperArgs...), id}
	if point == "after-start" {
		e.MustTether(args...)
		args = []string{"start", id}
	}
	cmd := e.Command(args...)
	cmd.Env = append(os.Environ(), "TETHER_CRASH_POINT="+point)
	out, err := cmd.CombinedOutput()
	managerDied := !strings.HasPrefix(point, "shim-")
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("tether %v at %s: %v: %s", args, point, err, out)
	}
	if killed := ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL; killed != managerDied {
		t.Fatalf("at %s: manager %v, want killed=%v: %s", point, ee, managerDied, out)
	}
	m := e.NewManager()
	switch point {
	case "after-mkdir", "after-record":
		rcvWantUnknown(t, rcvList(t, m)[id], "create did not complete")
	case "after-shim-spawn", "after-runtime-create":
		testutil.Eventually(t, rcvWait, id+" to be created by its shim", func() bool {
			return rcvState(t, e.NewManager(), id).Status == runtime.StatusCreated
		})
		rcvStartAndFinish(t, e, id)
	case "after-start":
		if st := rcvState(t, m, id); st.Status != runtime.StatusRunning {
			t.Fatalf("after start: %+v, want running", st)
		}
	case "shim-after-runtime-create", "shim-after-init-pid":
		// The manager saw its shim die: create failed and cleaned up.
		if !strings.Contains(string(out), "shim") {
			t.Fatalf("create's error %q does not name the shim", out)
		}
		if _, err := os.Stat(filepath.Join(e.Root, id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("failed create left its folder: %v", err)
		}
		rcvAssertClean(t, e)
		return
	case "after-shim-spawn,shim-after-init-pid":
		// Both died (the shim a moment after the manager): the init,
		// created but never started, is adopted.
		var st *runtime.State
		testutil.Eventually(t, rcvWait, id+" to be adopted", func() bool {
			st = rcvState(t, e.NewManager(), id)
			return st.Status == runtime.StatusCreated && slices.Contains(rcvCmdline(st.ShimPid), shimapi.ServeAdopt)
		})
		rcvStartAndFinish(t, e, id)
	}
	if pids := testutil.ShimPids(e.Root); len(pids) > 1 {
		t.Fatalf("shims %v serve one container", pids)
	}
	e.MustTether("delete", "--force", id)
	rcvAssertClean(t, e)
}

// rcvStartAndFinish starts a created sleeper, ends it with SIGUSR1 and
// checks its status.
func rcvStartAndFinish(t *testing.T, e *testutil.Env, id string) {
	t.Helper()
	e.MustTether("start", id)
	rcvLogHas(t, e, id, "ready")
	e.MustTether("kill", "--signal", "USR1", id)
	code, _ := rcvWaitCode(t, e, id)
	st := rcvState(t, e.NewManager(), id)
	// 255 is right only where the host hides exit events from the shim.
	if code != 7 && (exitEventsObservable() || !(code == runtime.UnknownExitStatus && strings.Contains(st.Reason, "not observable"))) {
		t.Fatalf("wait: %d (%+v), want 7", code, st)
	}
	rcvNoZombies(t, e, id)
}

// TestRecoveryPidReuse: init.pid and shim.pid are rewritten to name a live
// unrelated process, with its real pid and a wrong start time, and with
// every identity field of that process. No kill and no delete --force
// ever signals it; the real container is still found and removed.
func TestRecoveryPidReuse(t *testing.T) {
	rcvEach(t, rcvRunc, func(t *testing.T, e *testutil.Env) {
		for _, file := range []string{initPidFile, shimPidFile} {
			for _, exact := range []bool{false, true} {
				name := fmt.Sprintf("%s-%s", strings.TrimSuffix(file, ".pid"), map[bool]string{false: "wrong-start-time", true: "same-identity"}[exact])
				t.Run(name, func(t *testing.T) { rcvPidReuse(t, e, name, file, exact) })
			}
		}
	})
}

func rcvPidReuse(t *testing.T, e *testutil.Env, id, file string, exact bool) {
	victim := rcvUnrelated(t)
	rcvStart(t, e, id)
	init := rcvIdent(t, e, id, initPidFile)
	rcvKill(t, rcvIdent(t, e, id, shimPidFile)) // the manager must act on the records
	fake := victim
	if !exact {
		fake.StartTime++
	}
	rcvEditJSON(t, filepath.Join(e.Root, id, file), func(v map[string]any) {
		v["pid"], v["start_time"], v["boot_id"] = fake.Pid, fake.StartTime, fake.BootID
	})
	alive := func(when string) {
		t.Helper()
		if err := victim.Check(); err != nil {
			t.Fatalf("the unrelated process was hit %s: %v", when, err)
		}
	}
	st := rcvState(t, e.NewManager(), id)
	alive("by state")
	if file == initPidFile {
		// init.pid no longer names the container's init: its end is
		// unknown, and nothing is adopted.
		rcvWantStopped(t, st, runtime.UnknownExitStatus, strconv.Itoa(victim.Pid))
		for _, m := range []*runtime.Manager{e.NewManager(), rcvNoAdoptManager(t, e)} {
			c, err := m.Load(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
				if err := c.Kill(context.Background(), sig, false); err == nil {
					t.Fatalf("kill %v through a reused init.pid succeeded", sig)
				}
				alive("by kill " + sig.String())
			}
		}
	} else if st.Status != runtime.StatusRunning || st.Pid != init.Pid || st.ShimPid == victim.Pid {
		// shim.pid names no shim: the orphan init is adopted.
		t.Fatalf("%+v, want running with pid %d under a new shim", st, init.Pid)
	}
	if r := e.Tether("kill", "--signal", "TERM", id); file == shimPidFile && r.Code != 0 {
		t.Fatalf("kill through the adopting shim: %s", r.Stderr)
	}
	alive("by tether kill")
	e.MustTether("delete", "--force", id)
	alive("by delete --force")
	testutil.Eventually(t, rcvWait, "the real init to be killed", func() bool { return !init.Alive() })
	rcvAssertClean(t, e)
}

// rcvDamage is one way to break one record of one container.
type rcvDamage struct {
	id, file string
	shimDead bool   // kill the shim first, so the manager reads the records
	exited   bool   // let the container exit first (for exit.json)
	data     string // "" truncates the file to half its size
	want     []string
	prepared bool // set up by the caller: nothing to start or break
	newer    bool // a newer version: delete --force refuses and touches nothing
}

// rcvBreak starts the container a damage case needs and breaks its record.
// It returns the identities of its shim and init, saved before the damage.
func rcvBreak(t *testing.T, e *testutil.Env, d rcvDamage) []proc.Identity {
	t.Helper()
	if d.prepared {
		return []proc.Identity{rcvIdent(t, e, d.id, shimPidFile), rcvIdent(t, e, d.id, initPidFile)}
	}
	if d.exited {
		e.MustTether("run", "-d", "--bundle", e.Bundle("sh", "-c", "exit 3"), d.id)
		rcvExitRecorded(t, e, d.id)
	} else {
		rcvStart(t, e, d.id)
	}
	idents := []proc.Identity{rcvIdent(t, e, d.id, shimPidFile), rcvIdent(t, e, d.id, initPidFile)}
	for _, ident := range idents {
		rcvKillOnCleanup(t, ident) // the damage may hide them from tether
	}
	if d.shimDead {
		rcvKill(t, idents[0])
	}
	path := filepath.Join(e.Root, d.id, d.file)
	data := []byte(d.data)
	if d.data == "" {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data = b[:len(b)/2]
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return idents
}

// rcvCheckDamage lists the root with a new manager: every damaged
// container is unknown with an error naming its file, the healthy one runs;
// then delete --force clears each damaged one entirely.
func rcvCheckDamage(t *testing.T, e *testutil.Env, cases []rcvDamage) {
	t.Helper()
	rcvStart(t, e, "healthy")
	healthy := rcvState(t, e.Manager(), "healthy")
	idents := map[string][]proc.Identity{}
	for _, d := range cases {
		idents[d.id] = rcvBreak(t, e, d)
	}
	states := rcvList(t, e.NewManager())
	if st := states["healthy"]; st == nil || st.Status != runtime.StatusRunning || st.Pid != healthy.Pid {
		t.Fatalf("healthy container next to damaged ones: %+v", st)
	}
	for _, d := range cases {
		rcvWantUnknown(t, states[d.id], append([]string{d.file}, d.want...)...)
		if r := e.Tether("state", d.id); r.Code != 0 || !strings.Contains(r.Stdout, `"unknown"`) {
			t.Fatalf("tether state %s: exit %d: %s%s", d.id, r.Code, r.Stdout, r.Stderr)
		}
	}
	for _, d := range cases {
		if d.newer {
			rcvRefusesNewer(t, e, d.id, idents[d.id])
			continue
		}
		e.MustTether("delete", "--force", d.id)
		for _, ident := range idents[d.id] {
			testutil.Eventually(t, rcvWait, fmt.Sprintf("%s pid %d to be gone after delete --force", d.id, ident.Pid),
				func() bool { return !ident.Alive() })
		}
	}
	e.MustTether("delete", "--force", "healthy")
	rcvAssertClean(t, e)
}

// TestRecoveryCorruptRecords: a corrupt, truncated or empty container.json,
// exit.json, shim.pid or init.pid makes that one container unknown with an
// error naming the file; the others load normally; delete --force clears
// it, shim and init included.
func TestRecoveryCorruptRecords(t *testing.T) {
	rcvEach(t, rcvRunc, func(t *testing.T, e *testutil.Env) {
		rcvCheckDamage(t, e, []rcvDamage{
			{id: "rec-garbage", file: recordFile, data: "{not json", want: []string{"corrupt"}},
			{id: "rec-truncated", file: recordFile, want: []string{"corrupt"}},
			{id: "rec-empty", file: recordFile, data: " ", want: []string{"corrupt"}},
			{id: "exit-truncated", file: exitFile, exited: true, shimDead: true, want: []string{"corrupt"}},
			{id: "shim-truncated", file: shimPidFile, want: []string{"corrupt"}},
			{id: "init-garbage", file: initPidFile, shimDead: true, data: "\x00\x01", want: []string{"corrupt"}},
		})
	})
}

// TestRecoverySchemaVersion: a record of schema version 99, or a shim
// answering in protocol version 99, makes that container unknown, saying
// the version is unsupported, instead of being misread; and it is left
// alone: delete --force refuses it and signals nothing (a newer tether
// owns it).
func TestRecoverySchemaVersion(t *testing.T) {
	rcvEach(t, rcvRunc, func(t *testing.T, e *testutil.Env) {
		v99 := func(file string) string {
			return fmt.Sprintf(`{"version":99,"pid":1,"status":0,"id":"x","bundle":"/x","runtime":"runc","file":%q}`, file)
		}
		rcvStartFakeShim(t, e, "peer-v99", `{"v":99,"state":{"id":"peer-v99","status":"running"}}`)
		rcvCheckDamage(t, e, []rcvDamage{
			{id: "peer-v99", file: "shim pid", prepared: true, newer: true, want: []string{"unsupported schema version"}},
			{id: "rec-v99", file: recordFile, data: v99("c"), newer: true, want: []string{"unsupported schema version 99", "newer tether"}},
			{id: "exit-v99", file: exitFile, exited: true, shimDead: true, data: v99("e"), newer: true, want: []string{"unsupported schema version 99", "newer tether"}},
			{id: "shim-v99", file: shimPidFile, data: v99("s"), newer: true, want: []string{"unsupported schema version 99", "newer tether"}},
			{id: "init-v99", file: initPidFile, shimDead: true, data: v99("i"), newer: true, want: []string{"unsupported schema version 99", "newer tether"}},
		})
	})
}

// rcvStartFakeShim makes container id's socket answer every request with
// reply (after its real shim was moved out of the way): a shim of another
// version, or, with reply "", one that accepts and never answers. stop
// closes it and removes its socket file.
func rcvStartFakeShim(t *testing.T, e *testutil.Env, id, reply string) (stop func()) {
	t.Helper()
	rcvStart(t, e, id)
	sock := filepath.Join(e.Root, id, socketFile)
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	ln, err := testutil.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	stop = func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	t.Cleanup(stop)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			if reply != "" {
				go func() {
					buf := make([]byte, 4096)
					conn.Read(buf)
					conn.Write([]byte(reply + "\n"))
				}()
			}
		}
	}()
	return stop
}

// TestRecoveryBootID: records whose boot id is not this boot's are from
// before a reboot: the container is stopped with the unknown status and a
// reason saying so, decided without dialing its socket (its shim is
// stopped here: a dial would go unanswered) and without adopting.
func TestRecoveryBootID(t *testing.T) {
	rcvEach(t, rcvRunc, func(t *testing.T, e *testutil.Env) {
		rcvStart(t, e, "old")
		rcvStart(t, e, "now")
		sid, init := rcvIdent(t, e, "old", shimPidFile), rcvIdent(t, e, "old", initPidFile)
		rcvKillOnCleanup(t, sid)
		if err := sid.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{shimPidFile, initPidFile} {
			rcvEditJSON(t, filepath.Join(e.Root, "old", f), func(v map[string]any) {
				v["boot_id"] = "00000000-0000-4000-8000-000000000000"
			})
		}
		states := rcvList(t, e.NewManager())
		rcvWantStopped(t, states["old"], runtime.UnknownExitStatus, "rebooted")
		if st := states["now"]; st.Status != runtime.StatusRunning {
			t.Fatalf("a container of this boot: %+v", st)
		}
		if code, _ := rcvWaitCode(t, e, "old"); code != runtime.UnknownExitStatus {
			t.Fatalf("wait: %d, want 255", code)
		}
		if pids := testutil.ShimPids(e.Root); len(pids) != 2 {
			t.Fatalf("shims %v: a stale container was adopted", pids)
		}
		if err := init.Check(); err != nil {
			t.Fatalf("state and wait touched the real init: %v", err)
		}
		e.MustTether("delete", "--force", "old")
		// This shim stands for one that died with the old boot.
		rcvKill(t, sid)
		e.MustTether("delete", "--force", "now")
		rcvAssertClean(t, e)
	})
}

// TestRecoveryWedgedShim: a shim stopped with SIGSTOP, and a socket that
// accepts and never answers, do not hang a manager: List returns with
// those containers unknown, "not responding", and the others fine.
func TestRecoveryWedgedShim(t *testing.T) {
	rcvEach(t, rcvRunc, func(t *testing.T, e *testutil.Env) {
		rcvStart(t, e, "fine")
		rcvStart(t, e, "stopped")
		sid := rcvIdent(t, e, "stopped", shimPidFile)
		rcvKillOnCleanup(t, sid)
		if err := sid.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopSilent := rcvStartFakeShim(t, e, "silent", "")
		rcvKillOnCleanup(t, rcvIdent(t, e, "silent", shimPidFile))
		states := rcvList(t, e.NewManager())
		if st := states["fine"]; st.Status != runtime.StatusRunning {
			t.Fatalf("healthy container next to wedged ones: %+v", st)
		}
		rcvWantUnknown(t, states["stopped"], "not responding")
		rcvWantUnknown(t, states["silent"], "not responding")
		if r := e.Tether("list"); r.Code != 0 || !strings.Contains(r.Stdout, "unknown") {
			t.Fatalf("tether list: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
		}
		if err := sid.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		stopSilent() // delete --force then finds nobody on the socket and kills the real shim
		if st := rcvState(t, e.NewManager(), "stopped"); st.Status != runtime.StatusRunning {
			t.Fatalf("after SIGCONT: %+v, want running", st)
		}
		for _, id := range []string{"fine", "stopped", "silent"} {
			e.MustTether("delete", "--force", id)
		}
		rcvAssertClean(t, e)
	})
}

// TestRecoveryLogBeforeExit: every line a container wrote before it
// exited is in the log by the time its exit is reported.
func TestRecoveryLogBeforeExit(t *testing.T) {
	const n = 3000
	rcvEach(t, rcvBoth, func(t *testing.T, e *testutil.Env) {
		script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i"; echo "err $i" >&2; i=$((i+1)); done; exit 9`, n)
		e.MustTether("run", "-d", "--bundle", e.Bundle("sh", "-c", script), "lines")
		if code, _ := rcvWaitCode(t, e, "lines"); code != 9 {
			t.Fatalf("wait: %d, want 9", code)
		}
		r := e.Tether("logs", "lines")
		if got := strings.Count(r.Stdout, "line "); got != n || !strings.Contains(r.Stdout, fmt.Sprintf("line %d\n", n-1)) {
			t.Fatalf("right after wait, the log holds %d of %d stdout lines", got, n)
		}
		if got := strings.Count(r.Stderr, "err "); got != n {
			t.Fatalf("right after wait, the log holds %d of %d stderr lines", got, n)
		}
		e.MustTether("delete", "lines")
		rcvAssertClean(t, e)
	})
}

// sigIgnored returns the SigIgn mask of pid.
func sigIgnored(t *testing.T, pid int) uint64 {
	t.Helper()
	return statusMask(t, strconv.Itoa(pid), "SigIgn")
}

// TestRecoveryShimSignals: SIGTERM, SIGHUP, SIGPIPE and SIGINT sent to a
// shim from outside neither end it nor its container; it still answers,
// and records the container's true exit afterwards.
func TestRecoveryShimSignals(t *testing.T) {
	rcvEach(t, rcvRunc, func(t *testing.T, e *testutil.Env) {
		rcvStart(t, e, "sig")
		sid := rcvIdent(t, e, "sig", shimPidFile)
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGINT} {
			if err := sid.Signal(sig); err != nil {
				t.Fatalf("%v: %v", sig, err)
			}
			// A round trip through the shim: it ran after the signal.
			st := rcvState(t, e.NewManager(), "sig")
			if st.Status != runtime.StatusRunning || st.ShimPid != sid.Pid {
				t.Fatalf("after %v: %+v", sig, st)
			}
			if err := sid.Check(); err != nil {
				t.Fatalf("shim after %v: %v", sig, err)
			}
		}
		// Ignored outright (SIG_IGN), and not passed on to the container
		// (its shell ignores SIGQUIT of its own accord).
		shimIgn := uint64(1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGINT-1) | 1<<(syscall.SIGPIPE-1) | 1<<(syscall.SIGTERM-1))
		if got := sigIgnored(t, sid.Pid); got&shimIgn != shimIgn {
			t.Fatalf("shim ignores signals %#x, want at least %#x", got, shimIgn)
		}
		if got := sigIgnored(t, rcvIdent(t, e, "sig", initPidFile).Pid); got&shimIgn != 0 {
			t.Fatalf("container init ignores signals %#x: the shim's %#x were passed on", got, shimIgn)
		}
		e.MustTether("kill", "--signal", "USR1", "sig")
		if code, _ := rcvWaitCode(t, e, "sig"); code != 7 {
			t.Fatalf("wait: %d, want 7", code)
		}
		exit, err := readExit(filepath.Join(e.Root, "sig"), exitFile)
		if err != nil || exit.Status != 7 {
			t.Fatalf("exit record %+v (%v), want status 7", exit, err)
		}
		rcvNoZombies(t, e, "sig")
		e.MustTether("delete", "sig")
		rcvAssertClean(t, e)
	})
}

// rcvRefusesNewer checks that delete --force refuses container id, which
// a newer tether made, and leaves its live processes alone; then the test
// removes it by hand (by identity), as that newer tether would.
func rcvRefusesNewer(t *testing.T, e *testutil.Env, id string, idents []proc.Identity) {
	t.Helper()
	var alive []proc.Identity
	for _, ident := range idents {
		if ident.Alive() {
			alive = append(alive, ident)
		}
	}
	if r := e.Tether("delete", "--force", id); r.Code == 0 || !strings.Contains(r.Stderr, "newer tether") {
		t.Fatalf("delete --force of %s: exit %d, %q; want a refusal naming the newer tether", id, r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(e.Root, id)); err != nil {
		t.Fatalf("%s: folder touched by a refused delete: %v", id, err)
	}
	for _, ident := range alive {
		if !ident.Alive() {
			t.Fatalf("%s: pid %d killed by a refused delete", id, ident.Pid)
		}
	}
	for _, ident := range alive {
		ident.Signal(syscall.SIGKILL)
	}
	for _, ident := range alive {
		testutil.Eventually(t, rcvWait, fmt.Sprintf("%s pid %d to be gone", id, ident.Pid), func() bool { return !ident.Alive() })
	}
	rt := &oci.Runtime{Command: e.Runtime, Root: filepath.Join(e.Root, ".oci", e.Runtime)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rt.Delete(ctx, id, &oci.DeleteOpts{Force: true})
	os.RemoveAll(filepath.Join(e.Root, id))
}

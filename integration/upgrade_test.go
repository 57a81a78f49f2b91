package integration

// In-place shim upgrade (issue 15): the shim execve()s a new binary and
// keeps its pid, so the container never notices. Every test runs with the
// real runc and crun; the "new binary" is a copy of today's tether-shim at
// another path, so /proc/PID/exe shows that the image changed.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// upgWait bounds every poll of this suite (a hang guard on a shared
// machine, not a speed assertion).
const upgWait = 60 * time.Second

// upgCounter prints 0, 1, 2... one number a line, pausing 20 ms every 20
// lines (about 1000 lines a second, one fork per pause), for ever.
var upgCounter = []string{"sh", "-c", `i=0; while :; do echo $i; i=$((i+1)); [ $((i%20)) -eq 0 ] && usleep 20000; done`}

// upgID is an ID unique to this run (cgroup paths are shared by suites).
func upgID(prefix string) string {
	return prefix + strconv.FormatInt(time.Now().UnixNano()%1e10, 36)
}

// upgNewBinary copies today's tether-shim to a new path: the "new" binary.
func upgNewBinary(t *testing.T, e *testutil.Env) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.Bin, "tether-shim"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tether-shim-next")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// upgStart creates and starts a container running args through the API.
func upgStart(t *testing.T, e *testutil.Env, id string, args ...string) *runtime.Container {
	t.Helper()
	ctx := context.Background()
	c, err := e.Manager().Create(ctx, id, e.Bundle(args...), runtime.CreateOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// upgState is the container's state through a fresh manager.
func upgState(t *testing.T, e *testutil.Env, id string) *runtime.State {
	t.Helper()
	c, err := e.NewManager().Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// upgExe is where /proc/PID/exe points.
func upgExe(t *testing.T, pid int) string {
	t.Helper()
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		t.Fatalf("shim pid %d: %v", pid, err)
	}
	return exe
}

// upgCounts reads the counter's numbers out of CRI log text, one a line.
func upgCounts(t *testing.T, text string) []int {
	t.Helper()
	var ns []int
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if l == "" {
			continue
		}
		n, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("counter line %q is not a number", l)
		}
		ns = append(ns, n)
	}
	return ns
}

// upgCheckSequence fails unless ns counts up by one from its first number,
// with no gap and no duplicate, and reaches at least min.
func upgCheckSequence(t *testing.T, what string, ns []int, min int) {
	t.Helper()
	if len(ns) == 0 {
		t.Fatalf("%s: no counter output", what)
	}
	for i := 1; i < len(ns); i++ {
		if ns[i] != ns[i-1]+1 {
			t.Fatalf("%s: %d follows %d (line %d): a gap or a duplicate", what, ns[i], ns[i-1], i)
		}
	}
	if ns[len(ns)-1] < min {
		t.Fatalf("%s: counter reached %d, want at least %d", what, ns[len(ns)-1], min)
	}
}

// upgLog is the whole stdout of the container's log.
func upgLog(t *testing.T, c *runtime.Container) string {
	t.Helper()
	var out, errb strings.Builder
	if err := crilog.Dump(c.LogPath(), crilog.ReadOptions{Tail: -1}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// upgLastCount is the last complete counter line in the log, -1 if none.
func upgLastCount(t *testing.T, c *runtime.Container) int {
	ns := upgCounts(t, upgLog(t, c))
	if len(ns) == 0 {
		return -1
	}
	return ns[len(ns)-1]
}

// upgBackground starts a CLI command and collects its stdout.
type upgBackground struct {
	cmd  *exec.Cmd
	out  strings.Builder
	done chan error
}

func upgRun(t *testing.T, e *testutil.Env, args ...string) *upgBackground {
	t.Helper()
	b := &upgBackground{cmd: e.Command(args...), done: make(chan error, 1)}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.cmd.Stderr = os.Stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.cmd.Process.Kill() })
	go func() {
		io.Copy(&b.out, bufio.NewReader(stdout))
		b.done <- b.cmd.Wait()
	}()
	return b
}

func (b *upgBackground) wait(t *testing.T) (string, int) {
	t.Helper()
	select {
	case err := <-b.done:
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", b.cmd.Args, err)
		}
		return b.out.String(), code
	case <-time.After(upgWait):
		t.Fatalf("%v did not end", b.cmd.Args)
	}
	return "", 0
}

// TestUpgradeUntouched: the container does not notice an upgrade. Same
// init, same shim pid now running the new binary, still running; the
// counter's log has no gap and no duplicate; a wait in flight (the CLI's,
// which asks again when the old image's connection closes) returns the
// true status; logs -f goes on to the end (it reads the log file; the shim
// pid it watches stays alive); an attach stream ends cleanly (cut), and
// exec, attach, kill, wait and delete work after.
func TestUpgradeUntouched(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		since := time.Now()
		id := upgID("up")
		c := upgStart(t, e, id, upgCounter...)
		testutil.Eventually(t, upgWait, "the counter to reach 500", func() bool { return upgLastCount(t, c) >= 500 })
		before := upgState(t, e, id)
		if before.Status != runtime.StatusRunning {
			t.Fatalf("state before: %+v", before)
		}
		oldExe := upgExe(t, before.ShimPid)
		inotifies := upgInotifyFds(t, before.ShimPid)
		if inotifies == 0 {
			t.Fatalf("shim pid %d holds no inotify fd before the upgrade: its folder watch is missing, so the retirement check below is blind", before.ShimPid)
		}
		waiter := upgRun(t, e, "wait", id)
		follower := upgRun(t, e, "logs", "-f", id)
		stream, err := c.Attach(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		cut := make(chan error, 1)
		go func() {
			exit, err := stream.Copy(io.Discard, io.Discard)
			if err == nil && exit != nil {
				err = fmt.Errorf("attach got an exit %+v before the container ended", exit)
			}
			cut <- err
		}()
		time.Sleep(100 * time.Millisecond) // the wait and the follower are connected
		next := upgNewBinary(t, e)
		u, err := c.Upgrade(ctx, next)
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if u.ShimPid != before.ShimPid || u.To.Binary != next || u.From.Binary != oldExe {
			t.Errorf("upgrade answer %+v: want pid %d, from %s to %s", u, before.ShimPid, oldExe, next)
		}
		if exe := upgExe(t, before.ShimPid); exe != next {
			t.Errorf("/proc/%d/exe is %s after the upgrade, want %s", before.ShimPid, exe, next)
		}
		after := upgState(t, e, id)
		if after.Status != runtime.StatusRunning || after.Pid != before.Pid || after.ShimPid != before.ShimPid {
			t.Fatalf("state after the upgrade: %+v, want running with init %d and shim %d", after, before.Pid, before.ShimPid)
		}
		select {
		case err := <-cut:
			if err != nil {
				t.Errorf("attach stream across the upgrade: %v", err)
			}
		case <-time.After(upgWait):
			t.Fatal("the attach stream was not ended by the upgrade")
		}
		stream.Close()
		mark := upgLastCount(t, c)
		testutil.Eventually(t, upgWait, "the counter to go on after the upgrade", func() bool { return upgLastCount(t, c) >= mark+500 })
		// The old image's inotify fds were handed over only to be closed
		// (Handoff.Retired); the new image's watches replace them.
		testutil.Eventually(t, upgWait, "the retired inotify fds to be closed", func() bool {
			return upgInotifyFds(t, before.ShimPid) == inotifies
		})

		if out := e.MustTether("exec", id, "--", "echo", "exec-after-upgrade"); out != "exec-after-upgrade\n" {
			t.Errorf("exec after the upgrade printed %q", out)
		}
		upgAttachSees(t, c)
		e.MustTether("kill", "--signal", "KILL", id)
		if out, code := waiter.wait(t); code != 137 || out != "137\n" {
			t.Errorf("the wait in flight across the upgrade: exit %d, output %q; want 137", code, out)
		}
		if r := e.Tether("wait", id); r.Code != 137 || r.Stdout != "137\n" {
			t.Errorf("wait after the upgrade: %+v, want 137", r)
		}
		followed, code := follower.wait(t)
		if code != 0 {
			t.Errorf("logs -f across the upgrade exited %d", code)
		}
		logged := upgLog(t, c)
		upgCheckSequence(t, "log", upgCounts(t, logged), mark+500)
		upgCheckSequence(t, "logs -f", upgCounts(t, followed), mark+500)
		// The journal tells each thing once across the images: the new
		// one does not journal again the starts the old one told.
		rctx, cancel := context.WithTimeout(ctx, upgWait)
		defer cancel()
		evs, err := e.NewManager().Events(rctx, runtime.EventsOpts{Since: since, Until: time.Now(), ID: id})
		if err != nil {
			t.Fatal(err)
		}
		var got []runtime.LifecycleEvent
		for ev := range evs {
			got = append(got, ev)
		}
		want := []string{runtime.EventCreated, runtime.EventStarted, runtime.EventExecStarted, runtime.EventExecExited, runtime.EventExited}
		if !slices.Equal(opsPlain(got), want) || got[len(got)-1].FromRecord {
			t.Errorf("journal across the upgrade: %+v; want %v, the exit journaled", got, want)
		}
		e.MustTether("delete", id)
		coreAssertNothingLeft(t, e)
	})
}

// upgAttachSees attaches and reads some counter output.
func upgAttachSees(t *testing.T, c *runtime.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), upgWait)
	defer cancel()
	s, err := c.Attach(ctx, "")
	if err != nil {
		t.Fatalf("attach after the upgrade: %v", err)
	}
	defer s.Close()
	w := &upgUntil{n: 100, done: make(chan struct{})}
	go s.Copy(w, io.Discard)
	select {
	case <-w.done:
	case <-ctx.Done():
		t.Fatal("attach after the upgrade got no output")
	}
}

// upgUntil closes done once n bytes went through it.
type upgUntil struct {
	n    int
	done chan struct{}
}

func (u *upgUntil) Write(p []byte) (int, error) {
	if u.n > 0 {
		u.n -= len(p)
		if u.n <= 0 {
			close(u.done)
		}
	}
	return len(p), nil
}

// TestUpgradeExitDuringHandoff: init and an exec'd process exit while the
// handoff is held open (a test hook stops the old image right before its
// execve, its reaper held). Both are zombies then, reaped by nobody; the
// new image reaps them and records their true statuses.
func TestUpgradeExitDuringHandoff(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		id := upgID("uh")
		release := filepath.Join(t.TempDir(), "release")
		t.Setenv("TETHER_HOLD_POINT", "shim-upgrade-before-exec="+release)
		b := e.Bundle("sh", "-c", "while [ ! -e /go-exit ]; do usleep 10000; done; exit 7")
		c, err := e.Manager().Create(ctx, id, b, runtime.CreateOpts{})
		if err != nil {
			t.Fatal(err)
		}
		os.Unsetenv("TETHER_HOLD_POINT")
		// On a failure the shim may be held, or between its images, when
		// the env's cleanup runs; it then outlived the test and restored
		// its removed folder. So release it and kill it by the identity
		// taken now (same pid across the exec) before the env's cleanup.
		shim, err := proc.Identify(upgState(t, e, id).ShimPid)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			os.WriteFile(release, nil, 0o600)
			if t.Failed() {
				shim.Signal(syscall.SIGKILL)
				shim.WaitExit(10 * time.Second)
			}
		})
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		xst, _, err := c.Exec(ctx, runtime.ExecOpts{ID: "x", Process: upgProcess(t, c,
			"sh", "-c", "while [ ! -e /exec-exit ]; do usleep 10000; done; exit 5")})
		if err != nil {
			t.Fatal(err)
		}
		execPid := xst.Pid
		st := upgState(t, e, id)
		next := upgNewBinary(t, e)
		done := make(chan error, 1)
		go func() { _, err := c.Upgrade(ctx, next); done <- err }()
		handoff := filepath.Join(e.Root, id, "handoff.json")
		testutil.Eventually(t, upgWait, "the old image to write its handoff", func() bool {
			_, err := os.Stat(handoff)
			return err == nil
		})
		// The exec first (were init first, the kernel would SIGKILL it):
		// it ends a zombie nobody reaps. init then hangs in its exit until
		// the zombies of its pid namespace are reaped (the kernel's
		// zap_pid_ns_processes), so it is seen exiting, not yet a zombie.
		if err := os.WriteFile(filepath.Join(b, "rootfs", "exec-exit"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, upgWait, "the exec to exit into a zombie of the held shim", func() bool {
			return upgHas(testutil.ZombieChildren(st.ShimPid), execPid)
		})
		if err := os.WriteFile(filepath.Join(b, "rootfs", "go-exit"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, upgWait, "init to be exiting", func() bool { return upgExiting(st.Pid) })
		if exe := upgExe(t, st.ShimPid); exe == next {
			t.Fatal("the shim execed before it was released")
		}
		os.WriteFile(release, nil, 0o600)
		if err := <-done; err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if exe := upgExe(t, st.ShimPid); exe != next {
			t.Errorf("/proc/%d/exe is %s, want %s", st.ShimPid, exe, next)
		}
		exit, err := c.Wait(ctx)
		if err != nil || exit.Status != 7 {
			t.Fatalf("init's exit during the handoff: %+v, %v; want status 7", exit, err)
		}
		xexit, err := c.WaitExec(ctx, "x")
		if err != nil || xexit.Status != 5 {
			t.Fatalf("the exec's exit during the handoff: %+v, %v; want status 5", xexit, err)
		}
		if exit.Reason != "" || xexit.Reason != "" {
			t.Errorf("exit reasons %q, %q: the true statuses need none", exit.Reason, xexit.Reason)
		}
		if zs := testutil.ZombieChildren(st.ShimPid); len(zs) != 0 {
			t.Errorf("zombies left under the shim: %v", zs)
		}
		e.MustTether("delete", id)
		coreAssertNothingLeft(t, e)
	})
}

func upgHas(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// upgProcess is the container's process spec running args.
func upgProcess(t *testing.T, c *runtime.Container, args ...string) specs.Process {
	t.Helper()
	spec, err := c.ProcessSpec(args)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestUpgradeRefused: a missing binary, one that is not executable, one
// that fails (a script standing for a broken build) and one that refuses
// the handoff (a binary without the check mode: it does not know the
// action) each leave the old image serving, with an error saying why; the
// counter goes on without a gap.
func TestUpgradeRefused(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		id := upgID("ur")
		c := upgStart(t, e, id, upgCounter...)
		testutil.Eventually(t, upgWait, "the counter to reach 200", func() bool { return upgLastCount(t, c) >= 200 })
		st := upgState(t, e, id)
		oldExe := upgExe(t, st.ShimPid)
		dir := t.TempDir()
		noexec := filepath.Join(dir, "noexec")
		os.WriteFile(noexec, []byte("x"), 0o644)
		broken := filepath.Join(dir, "broken")
		os.WriteFile(broken, []byte("#!/bin/sh\necho 'segmentation fault' >&2\nexit 139\n"), 0o755)
		refusing := filepath.Join(dir, "refusing")
		os.WriteFile(refusing, []byte("#!/bin/sh\necho \"tether-shim: unknown action \\\"$1\\\": use start or adopt\" >&2\nexit 1\n"), 0o755)
		cases := []struct{ bin, want string }{
			{filepath.Join(dir, "missing"), "no such file"},
			{noexec, "not executable"},
			{broken, "segmentation fault"},
			{refusing, `unknown action "check-handoff"`},
			{"relative/shim", "no such file"},
		}
		for _, tc := range cases {
			_, err := c.Upgrade(ctx, tc.bin)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("upgrade to %s: %v, want an error saying %q", tc.bin, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("upgrade to %s: error of several lines: %q", tc.bin, err)
			}
			now := upgState(t, e, id)
			if now.Status != runtime.StatusRunning || now.ShimPid != st.ShimPid || upgExe(t, st.ShimPid) != oldExe {
				t.Fatalf("after a refused upgrade to %s: %+v, exe %s; want the old shim serving", tc.bin, now, upgExe(t, st.ShimPid))
			}
		}
		if _, err := os.Stat(filepath.Join(e.Root, id, "handoff.json")); !os.IsNotExist(err) {
			t.Errorf("a handoff file is left after refused upgrades: %v", err)
		}
		mark := upgLastCount(t, c)
		testutil.Eventually(t, upgWait, "the counter to go on", func() bool { return upgLastCount(t, c) >= mark+200 })
		if out := e.MustTether("exec", id, "--", "echo", "still-serving"); out != "still-serving\n" {
			t.Errorf("exec after refused upgrades printed %q", out)
		}
		e.MustTether("kill", "--signal", "KILL", id)
		if r := e.Tether("wait", id); r.Code != 137 || r.Stdout != "137\n" {
			t.Errorf("wait: %+v, want 137", r)
		}
		upgCheckSequence(t, "log", upgCounts(t, upgLog(t, c)), mark+200)
		e.MustTether("delete", id)
		coreAssertNothingLeft(t, e)
	})
}

// TestUpgradeNewBinaryDies: a new image that dies right after the execve
// (crash point) leaves an orphan like any dead shim: the next manager
// adopts the container, and its exit is recorded and kept.
func TestUpgradeNewBinaryDies(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		id := upgID("ud")
		t.Setenv("TETHER_CRASH_POINT", "shim-upgrade-after-exec")
		c := upgStart(t, e, id, "sleep", "1000")
		os.Unsetenv("TETHER_CRASH_POINT")
		st := upgState(t, e, id)
		shim := proc.Identity{Pid: st.ShimPid}
		if _, err := c.Upgrade(ctx, upgNewBinary(t, e)); err == nil {
			t.Fatal("upgrade to a binary that dies after the exec succeeded")
		}
		testutil.Eventually(t, upgWait, "the dead new image to be gone", func() bool {
			_, err := os.Stat("/proc/" + strconv.Itoa(shim.Pid) + "/exe")
			return err != nil || upgZombie(shim.Pid)
		})
		adopted := upgState(t, e, id) // a fresh manager adopts the orphan
		if adopted.Status != runtime.StatusRunning || adopted.Pid != st.Pid || adopted.AdoptedAt == nil || adopted.ShimPid == st.ShimPid {
			t.Fatalf("after the new image died: %+v, want init %d running, adopted by a new shim", adopted, st.Pid)
		}
		e.MustTether("kill", "--signal", "KILL", id)
		out := e.Tether("wait", id).Stdout
		if out != "137\n" && out != fmt.Sprintf("%d\n", runtime.UnknownExitStatus) {
			t.Errorf("wait printed %q, want 137 (or unknown without process events)", out)
		}
		again := upgState(t, e, id)
		if again.Status != runtime.StatusStopped || again.ExitStatus == nil {
			t.Fatalf("state after the exit: %+v, want stopped with its exit kept", again)
		}
		e.MustTether("delete", id)
		coreAssertNothingLeft(t, e)
	})
}

// upgExiting reports whether pid is a zombie or has begun to exit
// (PF_EXITING in the flags, field 9 of /proc/PID/stat).
func upgExiting(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return f[0] == "Z" || (err == nil && flags&0x4 != 0)
}

func upgZombie(pid int) bool {
	st, err := proc.ReadStat(pid)
	return err == nil && st.State == 'Z'
}

// TestUpgradeTerminalAndStdin: the pty master and the stdin pipe's write
// end are handed over. A terminal container (cat on a pty) echoes input
// typed before and after the upgrade and can be resized after it; a
// container with a stdin pipe (cat) gets input before and after, and ends
// with status 0 when its stdin is closed through the new image.
func TestUpgradeTerminalAndStdin(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		for _, tty := range []bool{true, false} {
			t.Run(fmt.Sprintf("terminal=%v", tty), func(t *testing.T) { upgInput(t, e, tty) })
		}
	})
}

func upgInput(t *testing.T, e *testutil.Env, tty bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*upgWait)
	defer cancel()
	id := upgID("ui")
	b := e.BundleWith(bundle.Options{Args: []string{"cat"}, Terminal: tty})
	c, err := e.Manager().Create(ctx, id, b, runtime.CreateOpts{Terminal: tty, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	upgType(t, c, "before-upgrade")
	st := upgState(t, e, id)
	next := upgNewBinary(t, e)
	if _, err := c.Upgrade(ctx, next); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if exe := upgExe(t, st.ShimPid); exe != next {
		t.Fatalf("/proc/%d/exe is %s, want %s", st.ShimPid, exe, next)
	}
	upgType(t, c, "after-upgrade")
	if tty {
		if err := c.Resize(ctx, "", 120, 40); err != nil {
			t.Errorf("resize after the upgrade: %v", err)
		}
	}
	if err := c.CloseStdin(ctx, ""); err != nil {
		t.Fatalf("close stdin after the upgrade: %v", err)
	}
	exit, err := c.Wait(ctx)
	if err != nil || exit.Status != 0 {
		t.Fatalf("cat after its stdin closed: %+v, %v; want status 0", exit, err)
	}
	log := upgLog(t, c)
	for _, want := range []string{"before-upgrade", "after-upgrade"} {
		if !strings.Contains(log, want) {
			t.Errorf("log %q lacks %q", log, want)
		}
	}
	e.MustTether("delete", id)
	coreAssertNothingLeft(t, e)
}

// upgType attaches, writes word and a newline to the container's input and
// waits for cat to give it back.
func upgType(t *testing.T, c *runtime.Container, word string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), upgWait)
	defer cancel()
	s, err := c.Attach(ctx, "")
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	defer s.Close()
	seen := &upgSeen{want: word, done: make(chan struct{})}
	go s.Copy(seen, seen)
	if _, err := s.Write([]byte(word + "\n")); err != nil {
		t.Fatalf("write %q: %v", word, err)
	}
	select {
	case <-seen.done:
	case <-ctx.Done():
		t.Fatalf("cat never gave %q back", word)
	}
}

// upgSeen closes done once want has gone through it.
type upgSeen struct {
	mu   sync.Mutex
	buf  strings.Builder
	want string
	done chan struct{}
}

func (u *upgSeen) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	had := strings.Contains(u.buf.String(), u.want)
	u.buf.Write(p)
	if !had && strings.Contains(u.buf.String(), u.want) {
		close(u.done)
	}
	return len(p), nil
}

// TestUpgradeAdopted: a shim that adopted its container (its first shim
// was killed -9) hands over the pidfd it watches init by and the output
// pipes it reopened; the new binary keeps the adoption time, the counter's
// output after the adoption has no gap across the upgrade, and the exit is
// recorded: 137 from the process events connector, or UnknownStatus where
// that connector is not available (the adopted init is not the shim's
// child, so nothing else can tell).
func TestUpgradeAdopted(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		id := upgID("ua")
		c := upgStart(t, e, id, upgCounter...)
		rcvKill(t, rcvIdent(t, e, id, "shim.pid"))
		adopted := upgState(t, e, id) // a fresh manager adopts the orphan
		if adopted.AdoptedAt == nil || adopted.Status != runtime.StatusRunning {
			t.Fatalf("not adopted: %+v", adopted)
		}
		mark := upgLastCount(t, c)
		testutil.Eventually(t, upgWait, "output after the adoption", func() bool { return upgLastCount(t, c) >= mark+200 })
		c, err := e.NewManager().Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		next := upgNewBinary(t, e)
		if _, err := c.Upgrade(ctx, next); err != nil {
			t.Fatalf("upgrade of an adopting shim: %v", err)
		}
		after := upgState(t, e, id)
		if after.ShimPid != adopted.ShimPid || upgExe(t, after.ShimPid) != next || after.AdoptedAt == nil ||
			!after.AdoptedAt.Equal(*adopted.AdoptedAt) || after.Pid != adopted.Pid {
			t.Fatalf("after the upgrade: %+v, want the adopting shim %d running %s, adopted at %v", after, adopted.ShimPid, next, adopted.AdoptedAt)
		}
		mark = upgLastCount(t, c)
		testutil.Eventually(t, upgWait, "output after the upgrade", func() bool { return upgLastCount(t, c) >= mark+200 })
		e.MustTether("kill", "--signal", "KILL", id)
		out := e.Tether("wait", id).Stdout
		if out != "137\n" && out != fmt.Sprintf("%d\n", runtime.UnknownExitStatus) {
			t.Errorf("wait printed %q, want 137 (or unknown without process events)", out)
		}
		// The log after the adoption point counts on without a gap.
		ns := upgCounts(t, upgLog(t, c))
		var tail []int
		for i := len(ns) - 1; i > 0 && ns[i] == ns[i-1]+1; i-- {
			tail = ns[i-1:]
		}
		if len(tail) == 0 || tail[0] > mark {
			t.Errorf("the log's last unbroken run starts at %v, before %d expected: output lost across the upgrade", tail[:min(1, len(tail))], mark)
		}
		e.MustTether("delete", id)
		coreAssertNothingLeft(t, e)
	})
}

// TestUpgradeStates: a created container is upgraded and then started
// (its output and status come through the new binary); a paused one stays
// paused across the upgrade and resumes after it; a stopped one (its shim
// serves it until delete) keeps its exit record.
func TestUpgradeStates(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		next := upgNewBinary(t, e)
		id := upgID("uc")
		c, err := e.Manager().Create(ctx, id, e.Bundle("sh", "-c", "echo started; exit 3"), runtime.CreateOpts{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Upgrade(ctx, next); err != nil {
			t.Fatalf("upgrade of a created container: %v", err)
		}
		if st := upgState(t, e, id); st.Status != runtime.StatusCreated {
			t.Fatalf("created container after the upgrade: %+v", st)
		}
		e.MustTether("start", id)
		if r := e.Tether("wait", id); r.Code != 3 {
			t.Fatalf("wait after start: %+v", r)
		}
		if !strings.Contains(upgLog(t, c), "started") {
			t.Error("the output of a container started after the upgrade is not in its log")
		}
		if _, err := c.Upgrade(ctx, filepath.Join(e.Bin, "tether-shim")); err != nil {
			t.Fatalf("upgrade of a stopped container's shim: %v", err)
		}
		if st := upgState(t, e, id); st.Status != runtime.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != 3 {
			t.Fatalf("stopped container after the upgrade: %+v", st)
		}
		e.MustTether("delete", id)

		id = upgID("up")
		c = upgStart(t, e, id, "sleep", "1000")
		e.MustTether("pause", id)
		if _, err := c.Upgrade(ctx, next); err != nil {
			t.Fatalf("upgrade of a paused container: %v", err)
		}
		if st := upgState(t, e, id); st.Status != runtime.StatusPaused {
			t.Fatalf("paused container after the upgrade: %+v", st)
		}
		e.MustTether("resume", id)
		if st := upgState(t, e, id); st.Status != runtime.StatusRunning {
			t.Fatalf("resumed container after the upgrade: %+v", st)
		}
		e.MustTether("delete", "--force", id)
		coreAssertNothingLeft(t, e)
	})
}

// upgInotifyFds counts the inotify instances pid holds.
func upgInotifyFds(t *testing.T, pid int) int {
	t.Helper()
	n := 0
	for _, target := range fdTargets(t, pid) {
		if target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

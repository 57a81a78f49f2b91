package integration

// The exec and signals suite: processes exec'd into running containers,
// each with its own exit record, through the CLI (every call a fresh
// manager) and the runtime package, with the real runc and crun; signals by
// name and number; pause and resume.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/internal/ids"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/oci"
	"github.com/tether-run/tether/runtime"
)

// execWait bounds every wait of this suite: a hang guard, not a speed
// assertion.
const execWait = 60 * time.Second

// execSleeper runs a detached container whose init sleeps.
func execSleeper(t *testing.T, e *testutil.Env, id string) {
	t.Helper()
	e.MustTether("run", "-d", "--bundle", e.Bundle("sleep", "1000"), id)
}

// TestExecExitCodes: a foreground exec streams its output and exits with
// the process's code (0, 7); exec -d returns at once and wait --exec-id
// gives the status later; SIGKILL through kill --exec-id gives 137. Each
// exec keeps its own exit record, and only the documented files.
func TestExecExitCodes(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		execSleeper(t, e, "c")
		r := e.Tether("exec", "c", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
		if r.Code != 7 || r.Stdout != "out\n" || r.Stderr != "err\n" {
			t.Errorf("foreground exec: exit %d, stdout %q, stderr %q; want 7, out, err", r.Code, r.Stdout, r.Stderr)
		}
		if r := e.Tether("exec", "--exec-id", "ok", "c", "--", "true"); r.Code != 0 || r.Stderr != "" {
			t.Errorf("exec true: exit %d, stderr %q", r.Code, r.Stderr)
		}
		// -d without --exec-id prints the generated name.
		name := strings.TrimSpace(e.MustTether("exec", "-d", "c", "--", "sleep", "1000"))
		if ids.ValidID(name) != nil {
			t.Fatalf("exec -d printed %q, want the generated exec ID", name)
		}
		if out := e.MustTether("exec", "-d", "--exec-id", "three", "c", "--", "sh", "-c", "exit 3"); out != "" {
			t.Errorf("exec -d --exec-id printed %q, want nothing", out)
		}
		execWaitCode(t, e, "c", "three", 3)
		e.MustTether("kill", "--exec-id", name, "--signal", "KILL", "c")
		execWaitCode(t, e, "c", name, 137)
		execWaitCode(t, e, "c", "ok", 0) // long after it ended

		st := execStateOf(t, e, "c")
		want := map[string]int{name: 137, "ok": 0, "three": 3}
		for _, x := range st.Execs {
			code, mine := want[x.ID]
			if !mine {
				code = 7 // the foreground one, with a generated name
			}
			if x.Status != runtime.StatusStopped || x.ExitStatus == nil || *x.ExitStatus != code || x.Pid <= 0 || x.ExitedAt == nil || x.Reason != "" {
				t.Errorf("exec %+v in state, want stopped with status %d and no reason", x, code)
			}
		}
		if len(st.Execs) != 4 {
			t.Errorf("state has %d execs, want 4: %+v", len(st.Execs), st.Execs)
		}
		execCheckFiles(t, e, "c", len(st.Execs))
		e.MustTether("delete", "--force", "c")
	})
}

// execWaitCode runs wait --exec-id and checks the printed and exit status.
func execWaitCode(t *testing.T, e *testutil.Env, id, exec string, code int) {
	t.Helper()
	r := e.Tether("wait", "--exec-id", exec, id)
	if r.Code != code || strings.TrimSpace(r.Stdout) != strconv.Itoa(code) {
		t.Errorf("wait --exec-id %s %s: exit %d, stdout %q, stderr %q; want %d", exec, id, r.Code, r.Stdout, r.Stderr, code)
	}
}

func execStateOf(t *testing.T, e *testutil.Env, id string) *runtime.State {
	t.Helper()
	var st runtime.State
	out := e.MustTether("state", id)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state %s: %v: %s", id, err, out)
	}
	return &st
}

// execCheckFiles checks that the exec folder holds, for each of n finished
// execs, its exit record and its log, and nothing else (no scratch files,
// no pid records of processes that ended).
func execCheckFiles(t *testing.T, e *testutil.Env, id string, n int) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.Root, id, execDir))
	if err != nil {
		t.Fatal(err)
	}
	var exits, logs int
	for _, ent := range ents {
		switch name := ent.Name(); {
		case strings.HasSuffix(name, ".exit.json"):
			exits++
		case strings.HasSuffix(name, ".log"):
			logs++
		default:
			t.Errorf("stray file in the exec folder: %s", name)
		}
	}
	if exits != n || logs != n {
		t.Errorf("exec folder has %d exit records and %d logs, want %d of each", exits, logs, n)
	}
}

// execManyCount is how many execs TestExecManyInARow runs in a row: 500
// with runc; with crun fewer, still past runtime.ExecRetention so pruning
// is exercised, to keep the suite's time down on a shared 2-core machine
// (measured under the load of the other suites: 500 runc execs take about
// 10-25 s, crun's take as long again).
//
// TETHER_EXEC_MANY sets one count for both: make test-cgroup2 gives 120
// (still past ExecRetention) on its emulated CPU, where 500 runc execs
// alone took over 15 minutes.
var execManyCount = map[string]int{"runc": 500, "crun": 150}

func init() {
	if v := os.Getenv("TETHER_EXEC_MANY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= runtime.ExecRetention {
			panic(fmt.Sprintf("TETHER_EXEC_MANY=%q: give a count above runtime.ExecRetention (%d)", v, runtime.ExecRetention))
		}
		execManyCount = map[string]int{"runc": n, "crun": n}
	}
}

// TestExecManyInARow: short execs one after another, through the runtime
// package as a supervisor would drive them, leave no zombie under the
// shim, no descriptor open in it, and only the records of the last
// runtime.ExecRetention finished execs.
func TestExecManyInARow(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		c := execAPIContainer(t, e, "many")
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := c.ProcessSpec([]string{"true"})
		if err != nil {
			t.Fatal(err)
		}
		execRun(t, c, "warm", spec, 0) // the exec folder, the runtime's caches
		fds := testutil.FDCount(t, st.ShimPid)
		start := time.Now()
		n := execManyCount[e.Runtime]
		for i := range n {
			execRun(t, c, fmt.Sprintf("x%d", i), spec, 0)
		}
		t.Logf("%s: %d execs of true in %v (%v each, foreground through the API)", e.Runtime, n, time.Since(start), time.Since(start)/time.Duration(n))
		testutil.Eventually(t, execWait, "no zombie under the shim", func() bool {
			return len(testutil.ZombieChildren(st.ShimPid)) == 0
		})
		// The count moves a little on its own (connections closing, pidfds
		// the Go runtime closes when it collects them): a descriptor kept
		// per exec would add hundreds, and one on an exec's log shows.
		if got := testutil.FDCount(t, st.ShimPid); got > fds+execFdSlack {
			t.Errorf("shim holds %d descriptors after %d execs, %d before", got, n, fds)
		}
		execDir := filepath.Join(e.Root, "many", execDir)
		for fd, target := range testutil.FDs(t, st.ShimPid) {
			if strings.HasPrefix(target, execDir) {
				t.Errorf("shim still holds fd %d on %s", fd, target)
			}
		}
		after, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Execs) != runtime.ExecRetention {
			t.Fatalf("state keeps %d execs, want the last %d", len(after.Execs), runtime.ExecRetention)
		}
		for _, x := range after.Execs {
			i, err := strconv.Atoi(strings.TrimPrefix(x.ID, "x"))
			if err != nil || i < n-runtime.ExecRetention || x.ExitStatus == nil || *x.ExitStatus != 0 {
				t.Errorf("kept exec %+v: want one of the last %d, status 0", x, runtime.ExecRetention)
			}
		}
		execCheckFiles(t, e, "many", runtime.ExecRetention)
		// A pruned exec's ID is free again; a kept one is not.
		execRun(t, c, "x0", spec, 0)
		last := fmt.Sprintf("x%d", n-1)
		if _, _, err := c.Exec(ctx, runtime.ExecOpts{ID: last, Process: spec}); !errors.Is(err, runtime.ErrExists) {
			t.Errorf("exec with the kept ID %s: %v, want ErrExists", last, err)
		}
	})
}

// execAPIContainer creates and starts a sleeping container through the
// runtime package.
func execAPIContainer(t *testing.T, e *testutil.Env, id string) *runtime.Container {
	t.Helper()
	ctx := context.Background()
	c, err := e.Manager().Create(ctx, id, e.Bundle("sleep", "1000"), runtime.CreateOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// execRun runs one foreground exec through the API and checks its status.
func execRun(t *testing.T, c *runtime.Container, id string, spec specs.Process, want int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), execWait)
	defer cancel()
	_, stream, err := c.Exec(ctx, runtime.ExecOpts{ID: id, Process: spec, Attach: true})
	if err != nil {
		t.Fatalf("exec %s: %v", id, err)
	}
	defer stream.Close()
	var out strings.Builder
	exit, err := stream.Copy(&out, &out)
	if err == nil && exit == nil {
		exit, err = c.WaitExec(ctx, id) // cut off: the record decides
	}
	if err != nil {
		t.Fatalf("exec %s: %v", id, err)
	}
	if exit.Status != want {
		t.Fatalf("exec %s: status %d (%s), want %d; output %q", id, exit.Status, exit.Reason, want, out.String())
	}
	return out.String()
}

// execFdSlack is how far the shim's descriptor count may drift by itself.
const execFdSlack = 10

// TestExecConcurrent: 20 execs at once through 20 CLI processes, each
// with its own exit code and output.
func TestExecConcurrent(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		execSleeper(t, e, "c")
		const n = 20
		results := make([]testutil.Result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.Tether("exec", "--exec-id", fmt.Sprintf("p%d", i), "c", "--",
					"sh", "-c", fmt.Sprintf("echo hello-%d; exit %d", i, i+10))
			}()
		}
		wg.Wait()
		for i, r := range results {
			if r.Code != i+10 || r.Stdout != fmt.Sprintf("hello-%d\n", i) {
				t.Errorf("exec p%d: exit %d, stdout %q, stderr %q; want %d", i, r.Code, r.Stdout, r.Stderr, i+10)
			}
		}
		st := execStateOf(t, e, "c")
		if len(st.Execs) != n {
			t.Fatalf("state has %d execs, want %d", len(st.Execs), n)
		}
		for _, x := range st.Execs {
			i, _ := strconv.Atoi(strings.TrimPrefix(x.ID, "p"))
			if x.ExitStatus == nil || *x.ExitStatus != i+10 {
				t.Errorf("exec %+v in state, want status %d", x, i+10)
			}
		}
		execCheckFiles(t, e, "c", n)
	})
}

// TestExecAfterManagerRestart: a new Manager picks the container up and
// execs into it; an exec started by the old manager is waited on by the
// new one with its true status, whether it ended before or after.
func TestExecAfterManagerRestart(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		old := execAPIContainer(t, e, "r")
		long, _ := old.ProcessSpec([]string{"sleep", "1000"})
		quick, _ := old.ProcessSpec([]string{"sh", "-c", "exit 5"})
		for id, spec := range map[string]specs.Process{"long": long, "quick": quick} {
			if _, _, err := old.Exec(ctx, runtime.ExecOpts{ID: id, Process: spec}); err != nil {
				t.Fatalf("exec %s: %v", id, err)
			}
		}
		c, err := e.NewManager().Load(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		spec, _ := c.ProcessSpec([]string{"sh", "-c", "echo after; exit 4"})
		if out := execRun(t, c, "after", spec, 4); out != "after\n" {
			t.Errorf("exec after restart printed %q", out)
		}
		if exit, err := c.WaitExec(ctx, "quick"); err != nil || exit.Status != 5 {
			t.Errorf("wait quick: %+v, %v; want 5", exit, err)
		}
		if err := c.KillExec(ctx, "long", syscall.SIGTERM, false); err != nil {
			t.Fatal(err)
		}
		if exit, err := c.WaitExec(ctx, "long"); err != nil || exit.Status != 128+15 || exit.Reason != "" {
			t.Errorf("wait long: %+v, %v; want 143", exit, err)
		}
		// The CLI is a fresh manager on every call: exec -d in one, wait in another.
		e.MustTether("exec", "-d", "--exec-id", "cli", "r", "--", "sh", "-c", "exit 6")
		execWaitCode(t, e, "r", "cli", 6)
	})
}

// TestExecErrors: exec on a missing, created, stopped or paused container,
// with a bad or duplicate exec ID, a missing command or a command the
// runtime cannot start, and kill/wait of execs that do not exist or have
// ended: one clear line each, nothing started.
func TestExecErrors(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		execSleeper(t, e, "c")
		e.MustTether("create", "--bundle", e.Bundle("sleep", "1000"), "created")
		e.MustTether("run", "-d", "--bundle", e.Bundle("true"), "done")
		e.MustTether("wait", "done")
		e.MustTether("exec", "-d", "--exec-id", "dup", "c", "--", "sleep", "1000")
		e.MustTether("exec", "--exec-id", "ended", "c", "--", "true")
		for _, tc := range []struct {
			name  string
			args  []string
			code  int
			wants []string
		}{
			{"missing container", []string{"exec", "nope", "--", "true"}, 125, []string{"nope", "not found"}},
			{"created container", []string{"exec", "created", "--", "true"}, 125, []string{"not started", "tether start created"}},
			{"stopped container", []string{"exec", "done", "--", "true"}, 125, []string{"done", "stopped"}},
			{"bad exec ID", []string{"exec", "--exec-id", "no/slash", "c", "--", "true"}, 125, []string{"no/slash", "letters"}},
			{"duplicate of a running exec", []string{"exec", "--exec-id", "dup", "c", "--", "true"}, 125, []string{"dup", "already used"}},
			{"duplicate of an ended exec", []string{"exec", "--exec-id", "ended", "c", "--", "true"}, 125, []string{"ended", "already used"}},
			{"no command", []string{"exec", "c"}, 2, []string{"no command"}},
			{"command not found", []string{"exec", "c", "--", "no-such-cmd"}, 127, []string{"no-such-cmd"}},
			{"command path not found", []string{"exec", "c", "--", "/no/such/cmd"}, 127, []string{"/no/such/cmd"}},
			{"command not executable", []string{"exec", "c", "--", "/etc/passwd"}, 126, []string{"/etc/passwd"}},
			{"command a folder", []string{"exec", "c", "--", "/etc"}, 126, []string{"/etc"}},
			{"detached command not found", []string{"exec", "-d", "c", "--", "no-such-cmd"}, 127, []string{"no-such-cmd"}},
			{"wait unknown exec", []string{"wait", "--exec-id", "nope", "c"}, 125, []string{"nope", "not found"}},
			{"kill unknown exec", []string{"kill", "--exec-id", "nope", "c"}, 1, []string{"nope", "not found"}},
			{"kill ended exec", []string{"kill", "--exec-id", "ended", "c"}, 1, []string{"ended", "has exited"}},
		} {
			t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
				r := e.Tether(tc.args...)
				execOneLine(t, r, tc.code, tc.wants...)
			})
		}
		st := execStateOf(t, e, "c")
		if len(st.Execs) != 2 {
			t.Errorf("failed execs left entries: %+v", st.Execs)
		}
		ents, _ := os.ReadDir(filepath.Join(e.Root, "c", execDir))
		for _, ent := range ents {
			if !strings.HasPrefix(ent.Name(), "dup.") && !strings.HasPrefix(ent.Name(), "ended.") {
				t.Errorf("a failed exec left %s", ent.Name())
			}
		}
		e.MustTether("delete", "--force", "c")
		e.MustTether("delete", "--force", "created")
	})
}

// execOneLine checks a failed CLI call: the exit code, nothing on stdout,
// exactly one line on stderr that holds wants.
func execOneLine(t *testing.T, r testutil.Result, code int, wants ...string) {
	t.Helper()
	line := strings.TrimSuffix(r.Stderr, "\n")
	if r.Code != code || r.Stdout != "" || line == "" || strings.Contains(line, "\n") || !strings.HasPrefix(line, "tether ") {
		t.Errorf("want exit %d, no stdout and one line on stderr; got exit %d, stdout %q, stderr %q", code, r.Code, r.Stdout, r.Stderr)
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("stderr %q does not mention %q", line, w)
		}
	}
}

// TestExecKilledWhenInitExits: exec'd processes still running when init
// exits are killed and reaped, and their records say why; one that ended
// on its own keeps its own status. With a private pid namespace the kernel
// kills them; with the host's, the shim does.
func TestExecKilledWhenInitExits(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		execInitExits(t, e, "private-pidns", false)
		execInitExits(t, e, "host-pidns", true)
	})
}

func execInitExits(t *testing.T, e *testutil.Env, id string, hostPid bool) {
	t.Helper()
	b := e.Bundle("sleep", "1000")
	if hostPid {
		testutil.EditSpec(t, b, func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
				return ns.Type == specs.PIDNamespace
			})
		})
	}
	e.MustTether("run", "-d", "--bundle", b, id)
	if r := e.Tether("exec", "--exec-id", "own", id, "--", "sh", "-c", "exit 2"); r.Code != 2 {
		t.Fatalf("exec own: exit %d (%s), want 2", r.Code, r.Stderr)
	}
	e.MustTether("exec", "-d", "--exec-id", "a", id, "--", "sleep", "1000")
	e.MustTether("exec", "-d", "--exec-id", "b", id, "--", "sh", "-c", "sleep 1000")
	var idents []proc.Identity
	for _, x := range execStateOf(t, e, id).Execs {
		if x.ID == "own" {
			continue
		}
		ident, err := proc.Identify(x.Pid)
		if err != nil {
			t.Fatalf("exec %s: %v", x.ID, err)
		}
		idents = append(idents, ident)
	}
	e.MustTether("kill", "--signal", "KILL", id)
	execWaitCodeAll(t, e, id, 137)
	for _, x := range []string{"a", "b"} {
		execWaitCode(t, e, id, x, 137)
		exit, err := readExit(filepath.Join(e.Root, id, execDir), x+".exit.json")
		if err != nil || exit.Reason != runtime.ReasonInitExited {
			t.Errorf("exit record of %s: %+v, %v; want reason %q", x, exit, err, runtime.ReasonInitExited)
		}
	}
	for _, x := range execStateOf(t, e, id).Execs {
		want := runtime.ReasonInitExited
		if x.ID == "own" {
			want = ""
		}
		if x.Status != runtime.StatusStopped || x.Reason != want {
			t.Errorf("exec %+v in state, want stopped with reason %q", x, want)
		}
	}
	for _, ident := range idents {
		if ident.Alive() {
			t.Errorf("exec'd pid %d still runs after init exited", ident.Pid)
		}
	}
	if zs := testutil.ZombieChildren(execStateOf(t, e, id).ShimPid); len(zs) > 0 {
		t.Errorf("zombies under the shim: %v", zs)
	}
	e.MustTether("delete", id)
}

// execWaitCodeAll waits for the container and checks its status.
func execWaitCodeAll(t *testing.T, e *testutil.Env, id string, code int) {
	t.Helper()
	if r := e.Tether("wait", id); r.Code != code {
		t.Fatalf("wait %s: exit %d (%s), want %d", id, r.Code, r.Stderr, code)
	}
}

// TestExecKillSignals: kill takes signal names with or without SIG, in
// any case, and numbers; --exec-id signals one exec'd process; bad names
// and numbers are refused with one line and nothing is signalled.
func TestExecKillSignals(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		execSleeper(t, e, "c")
		for i, tc := range []struct {
			sig  string
			code int
		}{{"TERM", 143}, {"SIGTERM", 143}, {"term", 143}, {"15", 143}, {"HUP", 129}, {"sigusr1", 138}, {"9", 137}} {
			x := fmt.Sprintf("k%d", i)
			e.MustTether("exec", "-d", "--exec-id", x, "c", "--", "sleep", "1000")
			e.MustTether("kill", "--exec-id", x, "--signal", tc.sig, "c")
			execWaitCode(t, e, "c", x, tc.code)
		}
		for _, bad := range []string{"FOO", "SIGFOO", "0", "65", "-1", "1.5", ""} {
			execOneLine(t, e.Tether("kill", "--signal", bad, "c"), 2, "signal")
		}
		execOneLine(t, e.Tether("kill", "--all", "--exec-id", "k0", "c"), 2, "--all")
		if st := execStateOf(t, e, "c"); st.Status != runtime.StatusRunning {
			t.Fatalf("after refused kills the container is %s", st.Status)
		}
		e.MustTether("kill", "--signal", "SIGKILL", "c")
		execWaitCodeAll(t, e, "c", 137)
		execSleeper(t, e, "all")
		e.MustTether("exec", "-d", "--exec-id", "x", "all", "--", "sleep", "1000")
		e.MustTether("kill", "--all", "--signal", "9", "all")
		execWaitCodeAll(t, e, "all", 137)
		execWaitCode(t, e, "all", "x", 137)
	})
}

// TestExecList: list shows how many exec'd processes still run, and its
// JSON form and state carry every kept exec with id, pid, status and exit
// status.
func TestExecList(t *testing.T) {
	e := testutil.NewEnv(t, "runc")
	execSleeper(t, e, "c")
	e.MustTether("exec", "-d", "--exec-id", "run1", "c", "--", "sleep", "1000")
	if r := e.Tether("exec", "--exec-id", "done1", "c", "--", "sh", "-c", "exit 9"); r.Code != 9 {
		t.Fatalf("exec done1: exit %d (%s), want 9", r.Code, r.Stderr)
	}
	table := strings.Split(strings.TrimSpace(e.MustTether("list")), "\n")
	head := strings.Fields(strings.Replace(table[0], "SHIM PID", "SHIM_PID", 1))
	col := slices.Index(head, "EXECS")
	if col < 0 || len(table) != 2 {
		t.Fatalf("list table has no EXECS column:\n%s", strings.Join(table, "\n"))
	}
	if row := strings.Fields(table[1]); len(row) <= col || row[col] != "1" {
		t.Errorf("EXECS of c in %q, want 1 (run1 runs, done1 ended)", table[1])
	}
	var list []runtime.State
	if err := json.Unmarshal([]byte(e.MustTether("list", "--format", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || len(list[0].Execs) != 2 {
		t.Fatalf("list --format json: %+v", list)
	}
	for _, x := range list[0].Execs {
		switch {
		case x.ID == "run1" && x.Status == runtime.StatusRunning && x.Pid > 0 && x.ExitStatus == nil:
		case x.ID == "done1" && x.Status == runtime.StatusStopped && x.Pid > 0 && x.ExitStatus != nil && *x.ExitStatus == 9:
		default:
			t.Errorf("exec in list: %+v", x)
		}
	}
	e.MustTether("delete", "--force", "c")
}

// TestExecPauseResume: pause and resume through the runtime, paused shown
// in state (for running execs too, and by the runtime itself); exec is
// refused while paused, naming the fix; pausing twice or resuming a
// running container is refused; SIGKILL ends a paused container.
func TestExecPauseResume(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		execSleeper(t, e, "c")
		e.MustTether("exec", "-d", "--exec-id", "s", "c", "--", "sleep", "1000")
		e.MustTether("pause", "c")
		execCheckPaused(t, e, "c", true)
		execOneLine(t, e.Tether("exec", "c", "--", "true"), 125, "paused", "tether resume c")
		execOneLine(t, e.Tether("pause", "c"), 1, "paused")
		e.MustTether("resume", "c")
		execCheckPaused(t, e, "c", false)
		execOneLine(t, e.Tether("resume", "c"), 1, "running")
		if r := e.Tether("exec", "c", "--", "sh", "-c", "exit 4"); r.Code != 4 {
			t.Errorf("exec after resume: exit %d (%s), want 4", r.Code, r.Stderr)
		}
		e.MustTether("pause", "c")
		e.MustTether("kill", "--signal", "KILL", "c")
		execWaitCodeAll(t, e, "c", 137)
		execWaitCode(t, e, "c", "s", 137)
		e.MustTether("delete", "c")
	})
}

// execCheckPaused checks tether's state and the runtime's own.
func execCheckPaused(t *testing.T, e *testutil.Env, id string, paused bool) {
	t.Helper()
	want, wantRT := runtime.StatusRunning, oci.StatusRunning
	if paused {
		want, wantRT = runtime.StatusPaused, oci.StatusPaused
	}
	st := execStateOf(t, e, id)
	if st.Status != want || len(st.Execs) != 1 || st.Execs[0].Status != want {
		t.Errorf("state %+v, want %s with its exec %s", st, want, want)
	}
	rt := &oci.Runtime{Command: e.Runtime, Root: filepath.Join(e.Root, ".oci", e.Runtime)}
	ctx, cancel := context.WithTimeout(context.Background(), execWait)
	defer cancel()
	if rst, err := rt.State(ctx, id); err != nil || rst.Status != wantRT {
		t.Errorf("%s state: %+v, %v; want %s", e.Runtime, rst, err, wantRT)
	}
	// and the kernel's own: the freezer of cgroup v1, or v2's cgroup.events
	if frozen, err := testutil.CgroupFrozen(st.Pid); err != nil || frozen != paused {
		t.Errorf("the kernel says frozen=%v (%v) for init %d's cgroup, want %v", frozen, err, st.Pid, paused)
	}
}

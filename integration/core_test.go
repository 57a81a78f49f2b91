package integration

// The core suite: a container's whole life through one detached shim, with
// the real runc and crun on busybox bundles, driven through the CLI (every
// call a fresh manager) and the runtime package; and the CLI's answers to
// bad input. Every test that runs a container runs once per OCI runtime.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	"github.com/tether-run/tether/runtime"
)

// coreWait bounds every poll of this suite. It is a hang guard, not a
// speed assertion: the machine is shared with other suites.
const coreWait = 60 * time.Second

// TestCoreExitCodes: the container's exit code comes out of a foreground
// run, of run -d + wait, and of a SIGKILL (137); its output streams to the
// foreground run and reaches the log.
func TestCoreExitCodes(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		for _, code := range []int{0, 3} {
			t.Run(fmt.Sprintf("foreground-%d", code), func(t *testing.T) { coreForeground(t, e, code) })
			t.Run(fmt.Sprintf("detached-%d", code), func(t *testing.T) { coreDetached(t, e, code) })
		}
		t.Run("kill-137", func(t *testing.T) { coreKilled(t, e) })
	})
}

func coreForeground(t *testing.T, e *testutil.Env, code int) {
	id := fmt.Sprintf("fg%d", code)
	b := e.Bundle("sh", "-c", fmt.Sprintf("echo out-%d; echo err-%d >&2; exit %d", code, code, code))
	r := e.Tether("run", "--bundle", b, id)
	if r.Code != code {
		t.Fatalf("run exited %d, want %d; stderr %q", r.Code, code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, fmt.Sprintf("out-%d\n", code)) {
		t.Errorf("run stdout %q: the container's stdout was not streamed", r.Stdout)
	}
	if !strings.Contains(r.Stderr, fmt.Sprintf("err-%d\n", code)) {
		t.Errorf("run stderr %q: the container's stderr was not streamed", r.Stderr)
	}
	st, _ := coreState(t, e, id)
	if st.Status != runtime.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != code {
		t.Errorf("state after the run: %+v, want stopped with exit_status %d", st, code)
	}
	coreLogsHave(t, e, id, fmt.Sprintf("out-%d", code), fmt.Sprintf("err-%d", code))
	e.MustTether("delete", id)
	coreAssertNothingLeft(t, e)
}

func coreDetached(t *testing.T, e *testutil.Env, code int) {
	id := fmt.Sprintf("d%d", code)
	b := e.Bundle("sh", "-c", fmt.Sprintf("echo out-%d; echo err-%d >&2; exit %d", code, code, code))
	if out := e.MustTether("run", "-d", "--bundle", b, id); out != "" {
		t.Errorf("run -d printed %q, want nothing", out)
	}
	r := e.Tether("wait", id)
	if r.Code != code || r.Stdout != fmt.Sprintf("%d\n", code) {
		t.Fatalf("wait: exit %d, stdout %q; want %d and %q (stderr %q)", r.Code, r.Stdout, code, fmt.Sprintf("%d\n", code), r.Stderr)
	}
	// A second wait, from another fresh manager, gets the same answer.
	if r := e.Tether("wait", id); r.Code != code {
		t.Errorf("second wait exited %d, want %d", r.Code, code)
	}
	coreLogsHave(t, e, id, fmt.Sprintf("out-%d", code), fmt.Sprintf("err-%d", code))
	e.MustTether("delete", id)
	coreAssertNothingLeft(t, e)
}

func coreKilled(t *testing.T, e *testutil.Env) {
	b := e.Bundle("sh", "-c", "echo up; sleep 1000")
	e.MustTether("run", "-d", "--bundle", b, "k")
	coreEventuallyLogs(t, e, "k", "up")
	e.MustTether("kill", "--signal", "KILL", "k")
	r := e.Tether("wait", "k")
	if r.Code != 137 || r.Stdout != "137\n" {
		t.Fatalf("wait after SIGKILL: exit %d, stdout %q; want 137 (stderr %q)", r.Code, r.Stdout, r.Stderr)
	}
	st, _ := coreState(t, e, "k")
	if st.Status != runtime.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != 137 {
		t.Errorf("state after SIGKILL: %+v, want stopped, exit_status 137", st)
	}
	e.MustTether("delete", "k")
	coreAssertNothingLeft(t, e)
}

// TestCoreStateAndList: state is one JSON object with the fields of
// DESIGN.md at every stage, and list shows the same as a table and as JSON.
func TestCoreStateAndList(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		if out := e.MustTether("list", "--format", "json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("list --format json on an empty root: %q, want []", out)
		}
		b := e.Bundle("sh", "-c", "echo up; sleep 1000")
		before := time.Now()
		e.MustTether("create", "--bundle", b, "s1")
		after := time.Now()

		st, raw := coreState(t, e, "s1")
		coreCheckFields(t, raw, false)
		if st.ID != "s1" || st.Status != runtime.StatusCreated || st.Pid <= 0 || st.ShimPid <= 0 || st.Bundle != b {
			t.Errorf("state after create: %+v; want s1, created, both pids, bundle %s", st, b)
		}
		if st.CreatedAt == nil || st.CreatedAt.Before(before.Add(-time.Second)) || st.CreatedAt.After(after.Add(time.Second)) {
			t.Errorf("created_at %v is not the time of the create (%v .. %v)", st.CreatedAt, before, after)
		}
		created := *st

		e.MustTether("start", "s1")
		st, raw = coreState(t, e, "s1")
		coreCheckFields(t, raw, false)
		if st.Status != runtime.StatusRunning || st.Pid != created.Pid || st.ShimPid != created.ShimPid {
			t.Errorf("state after start: %+v; want running with pid %d, shim pid %d", st, created.Pid, created.ShimPid)
		}

		e.MustTether("run", "-d", "--bundle", e.Bundle("true"), "s2")
		e.MustTether("wait", "s2")
		coreCheckList(t, e, map[string]string{"s1": runtime.StatusRunning, "s2": runtime.StatusStopped})

		e.MustTether("kill", "--signal", "KILL", "s1")
		e.Tether("wait", "s1")
		st, raw = coreState(t, e, "s1")
		coreCheckFields(t, raw, true)
		if st.Status != runtime.StatusStopped || *st.ExitStatus != 137 || st.ExitedAt.Before(*st.CreatedAt) {
			t.Errorf("state after kill: %+v; want stopped, 137, exited after created", st)
		}
		e.MustTether("delete", "s1")
		e.MustTether("delete", "s2")
		if out := e.MustTether("list", "--format", "json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("list --format json after deleting all: %q, want []", out)
		}
		coreAssertNothingLeft(t, e)
	})
}

// coreCheckFields checks the JSON field names DESIGN.md gives state.
func coreCheckFields(t *testing.T, raw map[string]json.RawMessage, stopped bool) {
	t.Helper()
	for _, f := range []string{"id", "status", "pid", "shim_pid", "bundle", "created_at"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("state has no %q: %v", f, raw)
		}
	}
	for _, f := range []string{"exit_status", "exited_at"} {
		if _, ok := raw[f]; ok != stopped {
			t.Errorf("state field %q present=%v, want %v (stopped=%v)", f, ok, stopped, stopped)
		}
	}
}

// coreCheckList compares list (table and JSON) with state for each ID.
func coreCheckList(t *testing.T, e *testutil.Env, want map[string]string) {
	t.Helper()
	var got []runtime.State
	if err := json.Unmarshal([]byte(e.MustTether("list", "--format", "json")), &got); err != nil {
		t.Fatalf("list --format json: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("list --format json has %d containers, want %d: %+v", len(got), len(want), got)
	}
	table := strings.Split(strings.TrimSpace(e.MustTether("list")), "\n")
	if len(table) != len(want)+1 || !strings.HasPrefix(table[0], "ID") || !strings.Contains(table[0], "SHIM PID") {
		t.Fatalf("list table:\n%s", strings.Join(table, "\n"))
	}
	for i, st := range got {
		one, _ := coreState(t, e, st.ID)
		if want[st.ID] != st.Status || one.Status != st.Status || one.Pid != st.Pid || one.ShimPid != st.ShimPid || one.Bundle != st.Bundle {
			t.Errorf("list entry %+v, state %+v, want status %q", st, one, want[st.ID])
		}
		if i > 0 && got[i-1].ID >= st.ID {
			t.Errorf("list is not sorted by ID: %s before %s", got[i-1].ID, st.ID)
		}
		row := strings.Fields(table[i+1])
		if len(row) < 4 || row[0] != st.ID || row[1] != st.Status || row[2] != strconv.Itoa(st.Pid) || row[3] != strconv.Itoa(st.ShimPid) {
			t.Errorf("list row %q does not match %+v", table[i+1], st)
		}
	}
}

// TestCoreCreateInvalidConfig: a bundle the runtime (or the JSON parser)
// refuses gives that message on one line, and leaves nothing behind.
func TestCoreCreateInvalidConfig(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		cases := []struct {
			name  string
			edit  func(cfg map[string]any)
			raw   string // replaces config.json when set
			wants []string
		}{
			{name: "missing-binary", edit: func(cfg map[string]any) {
				cfg["process"].(map[string]any)["args"] = []string{"/nosuchbin"}
			}, wants: []string{"/nosuchbin"}},
			{name: "bogus-namespace", edit: func(cfg map[string]any) {
				linux := cfg["linux"].(map[string]any)
				linux["namespaces"] = append(linux["namespaces"].([]any), map[string]any{"type": "bogus"})
			}, wants: []string{"bogus"}},
			{name: "broken-json", raw: "{broken", wants: []string{"config.json", "line 1", "tether bundle"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				b := e.Bundle("true")
				coreEditConfig(t, b, tc.edit, tc.raw)
				for _, cmd := range [][]string{{"create"}, {"run", "-d"}, {"run"}} {
					args := append(append([]string{}, cmd...), "--bundle", b, "bad")
					r := e.Tether(args...)
					coreOneLine(t, r, tc.wants...)
					// run's status is the container's: 127 for a missing
					// executable, as podman and shells give; 125 for
					// tether's own failures; create fails with 1.
					want := 1
					if cmd[0] == "run" {
						want = 125
						if tc.name == "missing-binary" {
							want = 127
						}
					}
					if r.Code != want {
						t.Errorf("tether %v: exit %d, want %d", args, r.Code, want)
					}
					if strings.Contains(r.Stderr, "exit status") {
						t.Errorf("tether %v: %q is not the runtime's own message", args, r.Stderr)
					}
					coreAssertNothingLeft(t, e)
				}
				_, err := e.Manager().Create(context.Background(), "bad", b, runtime.CreateOpts{})
				if err == nil || !strings.Contains(err.Error(), tc.wants[0]) {
					t.Errorf("runtime Create: %v, want the runtime's message naming %q", err, tc.wants[0])
				}
				coreAssertNothingLeft(t, e)
			})
		}
	})
}

func coreEditConfig(t *testing.T, bundleDir string, edit func(map[string]any), raw string) {
	t.Helper()
	path := filepath.Join(bundleDir, "config.json")
	if raw == "" {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg := map[string]any{}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		edit(cfg)
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		raw = string(out)
	}
	if err := os.WriteFile(path, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCoreIDInUse: a second create with a taken ID is refused with one
// clear line and leaves the first container as it was; of many concurrent
// creates of one ID exactly one wins.
func TestCoreIDInUse(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		b := e.Bundle("sh", "-c", "echo up; sleep 1000")
		e.MustTether("run", "-d", "--bundle", b, "taken")
		first, _ := coreState(t, e, "taken")
		for _, cmd := range [][]string{{"create"}, {"run", "-d"}, {"run"}} {
			args := append(append([]string{}, cmd...), "--bundle", b, "taken")
			coreOneLine(t, e.Tether(args...), "taken", "already exists", "pick another ID")
		}
		now, _ := coreState(t, e, "taken")
		if now.Status != runtime.StatusRunning || now.Pid != first.Pid || now.ShimPid != first.ShimPid {
			t.Errorf("the refused creates changed the first container: %+v, was %+v", now, first)
		}
		e.MustTether("delete", "--force", "taken")

		const n = 6
		errs := make([]error, n)
		m := e.Manager() // Env.Manager is not safe for concurrent use
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = m.Create(context.Background(), "race", b, runtime.CreateOpts{})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, runtime.ErrExists):
				t.Errorf("concurrent create: %v, want nil or ErrExists", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d concurrent creates of one ID succeeded, want exactly 1", won, n)
		}
		if st, _ := coreState(t, e, "race"); st.Status != runtime.StatusCreated {
			t.Errorf("the winner of the race: %+v, want created", st)
		}
		e.MustTether("delete", "race")
		coreAssertNothingLeft(t, e)
	})
}

// TestCoreManyAtOnce: 20 containers created and started at once, through
// the runtime API and through 20 concurrent CLI processes, all run, and
// all end and delete cleanly.
func TestCoreManyAtOnce(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		b := e.Bundle("sh", "-c", "echo up; sleep 1000")
		t.Run("api", func(t *testing.T) { coreManyAPI(t, e, b) })
		t.Run("cli", func(t *testing.T) { coreManyCLI(t, e, b) })
	})
}

const coreMany = 20

func coreManyIDs(prefix string) []string {
	ids := make([]string, coreMany)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return ids
}

func coreManyAPI(t *testing.T, e *testutil.Env, b string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*coreWait)
	defer cancel()
	ids := coreManyIDs("api")
	m := e.Manager()
	bundles := coreBundles(e, b, ids)
	coreParallel(t, ids, func(id string) error {
		c, err := m.Create(ctx, id, bundles[id], runtime.CreateOpts{})
		if err != nil {
			return err
		}
		return c.Start(ctx)
	})
	idents := coreCheckAllRunning(t, e, ids)
	m = e.NewManager()
	coreParallel(t, ids, func(id string) error {
		c, err := m.Load(ctx, id)
		if err != nil {
			return err
		}
		if err := c.Kill(ctx, syscall.SIGKILL, false); err != nil {
			return err
		}
		exit, err := c.Wait(ctx)
		if err != nil {
			return err
		}
		if exit.Status != 137 {
			return fmt.Errorf("exit status %d, want 137", exit.Status)
		}
		return c.Delete(ctx, false)
	})
	coreAssertGone(t, idents...)
	coreAssertNothingLeft(t, e)
}

func coreManyCLI(t *testing.T, e *testutil.Env, b string) {
	ids := coreManyIDs("cli")
	cli := func(args ...string) error {
		if out, err := e.Command(args...).CombinedOutput(); err != nil {
			return fmt.Errorf("tether %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	bundles := coreBundles(e, b, ids)
	coreParallel(t, ids, func(id string) error { return cli("run", "-d", "--bundle", bundles[id], id) })
	idents := coreCheckAllRunning(t, e, ids)
	coreParallel(t, ids, func(id string) error { return cli("delete", "--force", id) })
	coreAssertGone(t, idents...)
	coreAssertNothingLeft(t, e)
}

// coreBundles gives each of ids a bundle of its own on b's rootfs: one
// cgroup per container.
func coreBundles(e *testutil.Env, b string, ids []string) map[string]string {
	bundles := map[string]string{}
	for _, id := range ids {
		bundles[id] = e.SameBundle(b)
	}
	return bundles
}

// coreCheckAllRunning checks that a fresh manager lists exactly ids, each
// running with pids of its own and its output in the log, and returns
// their shim and init identities.
func coreCheckAllRunning(t *testing.T, e *testutil.Env, ids []string) []proc.Identity {
	t.Helper()
	states, err := e.NewManager().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{}
	var got []string
	for _, st := range states {
		if st.Status != runtime.StatusRunning || pids[st.Pid] || pids[st.ShimPid] {
			t.Errorf("%+v: want running, with pids of its own", st)
		}
		pids[st.Pid], pids[st.ShimPid] = true, true
		got = append(got, st.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("list shows %v, want %v", got, ids)
	}
	for _, id := range ids {
		coreEventuallyLogs(t, e, id, "up")
	}
	return coreIdentitiesOf(t, e, ids...)
}

// coreParallel runs f for every id at once and fails t for each error.
func coreParallel(t *testing.T, ids []string, f func(id string) error) {
	t.Helper()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = f(id) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", ids[i], err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestCoreShimSurvivesManagerKill: the manager side (a foreground tether
// run, in its own process group) is killed with SIGKILL, alone or with its
// whole group, while it streams the container's output. The container and
// its shim run on, the shim keeps draining output, nothing the manager
// held stays open, and a new manager sees the container running with the
// same pids, and can kill, wait for and delete it.
func TestCoreShimSurvivesManagerKill(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		for _, group := range []bool{false, true} {
			name := map[bool]string{false: "manager", true: "process-group"}[group]
			t.Run(name, func(t *testing.T) { coreKillManager(t, e, name, group) })
		}
	})
}

func coreKillManager(t *testing.T, e *testutil.Env, id string, group bool) {
	b := e.Bundle("sh", "-c", "echo ready; while true; do echo tick; sleep 0.1; done")
	cmd := e.Command("run", "--bundle", b, id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := coreStartCaptured(t, cmd)
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	testutil.Eventually(t, coreWait, "the foreground run to stream 'ready'", func() bool {
		return strings.Contains(out.String(), "ready\n")
	})
	before, _ := coreState(t, e, id)
	if before.Status != runtime.StatusRunning {
		t.Fatalf("before the kill: %+v, want running", before)
	}
	idents := coreIdentitiesOf(t, e, id)
	if pgid, sid := coreSession(t, before.ShimPid); pgid == cmd.Process.Pid || sid != before.ShimPid {
		t.Fatalf("shim pid %d is in process group %d, session %d: want a session of its own, apart from the manager's group %d",
			before.ShimPid, pgid, sid, cmd.Process.Pid)
	}
	if group {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if err != nil {
			t.Fatal(err)
		}
	} else if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the manager was not killed: %v", err)
	}
	select {
	case <-out.done:
	case <-time.After(coreWait):
		t.Fatal("the manager's stdout is still open after it died: a shim or container holds it")
	}
	for _, ident := range idents {
		if err := ident.Check(); err != nil {
			t.Fatalf("after the manager's death: %v", err)
		}
	}
	m := e.NewManager()
	c, err := m.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.State(context.Background())
	if err != nil || st.Status != runtime.StatusRunning || st.Pid != before.Pid || st.ShimPid != before.ShimPid {
		t.Fatalf("new manager sees %+v (%v), want running with pid %d, shim pid %d", st, err, before.Pid, before.ShimPid)
	}
	if cli, _ := coreState(t, e, id); cli.Status != runtime.StatusRunning || cli.Pid != before.Pid || cli.ShimPid != before.ShimPid {
		t.Fatalf("tether state: %+v, want running with the same pids", cli)
	}
	ticks := strings.Count(coreLogs(t, e, id), "tick")
	testutil.Eventually(t, coreWait, "the shim to keep draining output into the log", func() bool {
		return strings.Count(coreLogs(t, e, id), "tick") > ticks+2
	})
	e.MustTether("kill", "--signal", "KILL", id)
	if r := e.Tether("wait", id); r.Code != 137 {
		t.Fatalf("wait: exit %d (%s), want 137", r.Code, r.Stderr)
	}
	e.MustTether("delete", id)
	coreAssertGone(t, idents...)
	coreAssertNothingLeft(t, e)
}

// coreSession reads the process group and session of pid.
func coreSession(t *testing.T, pid int) (pgid, sid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	pgid, _ = strconv.Atoi(f[2])
	sid, _ = strconv.Atoi(f[3])
	return pgid, sid
}

// coreOutput collects a command's stdout and stderr through a pipe only
// the command holds, and closes done at EOF: when every process that had
// the write end has closed it.
type coreOutput struct {
	mu   sync.Mutex
	b    strings.Builder
	done chan struct{}
}

func (o *coreOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// final is the whole output once the pipe reached EOF. A command's Wait
// returning does not mean the reader has drained the pipe: reading the
// output right after Wait can miss its last write.
func (o *coreOutput) final(t *testing.T) string {
	t.Helper()
	select {
	case <-o.done:
	case <-time.After(coreWait):
		t.Errorf("the command's output is still open %v after it ended: something it started holds it", coreWait)
	}
	return o.String()
}

// coreStartCaptured starts cmd with its stdout and stderr on a pipe that
// only cmd (and whatever inherits from it) holds.
func coreStartCaptured(t *testing.T, cmd *exec.Cmd) *coreOutput {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close() // the child has its own copy; EOF comes when all copies are gone
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	o := &coreOutput{done: make(chan struct{})}
	go func() {
		defer close(o.done)
		defer r.Close()
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			o.mu.Lock()
			o.b.Write(buf[:n])
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

// TestCoreDeleteLeavesNothing: delete refuses a running container without
// --force and leaves it running; with --force, and for a stopped
// container, no process, mount, cgroup, runtime state or folder is left.
func TestCoreDeleteLeavesNothing(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		b := e.Bundle("sh", "-c", "echo up; sleep 1000")
		for _, force := range []bool{true, false} {
			id := map[bool]string{true: "del-force", false: "del-stop"}[force]
			e.MustTether("run", "-d", "--bundle", b, id)
			coreEventuallyLogs(t, e, id, "up")
			st, _ := coreState(t, e, id)
			idents := coreIdentitiesOf(t, e, id)
			rootfs := filepath.Join(b, "rootfs")
			if refs := coreMountRefs(t, rootfs); len(refs) == 0 {
				t.Fatalf("no mount of %s seen while the container runs: the mount check is blind", rootfs)
			}
			cgroups, err := testutil.CgroupDirs(st.Pid)
			if err != nil {
				t.Fatal(err)
			}
			if len(cgroups) == 0 {
				t.Fatalf("no cgroup folder found for pid %d: the cgroup check is blind", st.Pid)
			}
			if !slices.Contains(coreRuntimeList(t, e), id) {
				t.Fatalf("%s list does not show %s: the runtime-state check is blind", e.Runtime, id)
			}
			coreOneLine(t, e.Tether("delete", id), id, "running", "--force")
			if now, _ := coreState(t, e, id); now.Status != runtime.StatusRunning || now.ShimPid != st.ShimPid {
				t.Fatalf("a refused delete changed the container: %+v", now)
			}
			if force {
				e.MustTether("delete", "--force", id)
			} else {
				e.MustTether("kill", "--signal", "KILL", id)
				e.Tether("wait", id)
				e.MustTether("delete", id)
			}
			coreAssertGone(t, idents...)
			if refs := coreMountRefs(t, rootfs); len(refs) != 0 {
				t.Errorf("mounts of the rootfs left after delete: %q", refs)
			}
			for _, dir := range cgroups {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("cgroup %s left after delete", dir)
				}
			}
			coreOneLine(t, e.Tether("state", id), id, "not found")
			coreAssertNothingLeft(t, e)
		}
	})
}

// TestCoreRunRm: run --rm streams, exits with the container's code and
// removes the container (-d --rm: TestAutoRemove).
func TestCoreRunRm(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		b := e.Bundle("sh", "-c", "echo bye; exit 3")
		r := e.Tether("run", "--rm", "--bundle", b, "rm1")
		if r.Code != 3 || r.Stdout != "bye\n" {
			t.Errorf("run --rm: exit %d, stdout %q; want 3 and %q (stderr %q)", r.Code, r.Stdout, "bye\n", r.Stderr)
		}
		coreOneLine(t, e.Tether("state", "rm1"), "rm1", "not found")
		coreAssertNothingLeft(t, e)
	})
}

// TestCoreNoLeakedFds: the container's init holds only 0, 1 and 2, and no
// shim keeps a descriptor that the manager inherited from its caller.
func TestCoreNoLeakedFds(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		stray := coreFdTarget(t, int(w.Fd()))
		cmd := e.Command("run", "-d", "--bundle", e.Bundle("sh", "-c", "exec sleep 1000"), "fds")
		// fd 10 of the CLI, without O_CLOEXEC, as a shell or CI runner may
		// leave one (fd 3 would be replaced by the shim's ready pipe).
		cmd.ExtraFiles = make([]*os.File, 8)
		cmd.ExtraFiles[7] = w
		out, err := cmd.CombinedOutput()
		w.Close()
		if err != nil {
			t.Fatalf("run -d: %v: %s", err, out)
		}
		st, _ := coreState(t, e, "fds")
		testutil.Eventually(t, coreWait, "init to exec sleep", func() bool {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.Pid))
			return string(b) == "sleep\x001000\x00"
		})
		fds := testutil.FDs(t, st.Pid)
		if !slices.Equal(slices.Sorted(maps.Keys(fds)), []int{0, 1, 2}) {
			t.Errorf("container init holds fds %v, want only 0, 1, 2", fds)
		}
		for fd, target := range testutil.FDs(t, st.ShimPid) {
			if target == stray {
				t.Errorf("shim holds the manager's inherited fd as its fd %d (%s)", fd, target)
			}
		}
		e.MustTether("delete", "--force", "fds")
	})
}

func coreFdTarget(t *testing.T, fd int) string {
	t.Helper()
	s, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCoreBadInput: each mistake gives one line on stderr naming the
// problem and the fix, a non-zero exit, and creates nothing, not even the
// root.
func TestCoreBadInput(t *testing.T) {
	testutil.RequireRoot(t)
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) { coreBadInput(t, testutil.NewEnv(t, rt)) })
	}
}

func coreBadInput(t *testing.T, e *testutil.Env) {
	good := e.Bundle("true")
	noConfig := t.TempDir()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string // after --root FRESH
		wants []string
	}{
		{"id-dotdot", []string{"create", "--bundle", good, "../x"}, []string{`"../x"`, "use 1 to 64"}},
		{"id-empty", []string{"create", "--bundle", good, ""}, []string{`""`, "use 1 to 64"}},
		{"id-65", []string{"create", "--bundle", good, strings.Repeat("a", 65)}, []string{strings.Repeat("a", 65), "use 1 to 64"}},
		{"id-space", []string{"run", "-d", "--bundle", good, "a b"}, []string{`"a b"`, "use 1 to 64"}},
		{"id-slash", []string{"run", "--bundle", good, "a/b"}, []string{`"a/b"`, "use 1 to 64"}},
		{"missing-bundle", []string{"create", "--bundle", "/nonexistent/bundle", "x"}, []string{"/nonexistent/bundle", "tether bundle"}},
		{"no-config", []string{"run", "-d", "--bundle", noConfig, "x"}, []string{noConfig, "config.json", "tether bundle"}},
		{"runtime-not-on-path", []string{"--runtime", "nosuch", "create", "--bundle", good, "x"}, []string{`"nosuch"`, "PATH", "--runtime"}},
		{"runtime-not-on-path-run", []string{"run", "--runtime", "nosuch", "--bundle", good, "x"}, []string{`"nosuch"`, "--runtime"}},
		{"root-under-file", []string{"--root", file + "/root", "create", "--bundle", good, "x"}, []string{file + "/root", "not a folder", "--root"}},
		{"root-under-file-list", []string{"--root", file + "/root", "list"}, []string{file + "/root", "--root"}},
		{"unknown-container", []string{"state", "nosuch"}, []string{"nosuch", "not found", "tether list"}},
		{"unknown-signal", []string{"kill", "--signal", "BOGUS", "x"}, []string{"BOGUS", "signal"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			args := append([]string{"--root", root, "--runtime", e.Runtime}, tc.args...)
			cmd := exec.Command(filepath.Join(e.Bin, "tether"), args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("tether %q: %v, want a non-zero exit", tc.args, err)
			}
			coreOneLine(t, testutil.Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: ee.ExitCode()}, tc.wants...)
			if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("tether %q created the root %s (%v)", tc.args, root, err)
			}
			if b, _ := os.ReadFile(file); string(b) != "x" {
				t.Errorf("tether %q changed %s", tc.args, file)
			}
			if pids := testutil.ShimPids(root); len(pids) != 0 {
				t.Errorf("tether %q left shims %v", tc.args, pids)
			}
		})
	}
	if ents, _ := os.ReadDir(noConfig); len(ents) != 0 {
		t.Errorf("the folder without config.json got %d entries", len(ents))
	}
}

// coreOneLine checks a failed CLI call: non-zero exit, nothing on stdout,
// exactly one line on stderr that starts with "tether" and holds wants.
func coreOneLine(t *testing.T, r testutil.Result, wants ...string) {
	t.Helper()
	line := strings.TrimSuffix(r.Stderr, "\n")
	if r.Code == 0 || r.Stdout != "" || line == "" || strings.Contains(line, "\n") || !strings.HasPrefix(line, "tether") {
		t.Errorf("want non-zero exit, no stdout and one line on stderr; got exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("stderr %q does not mention %q", line, w)
		}
	}
}

// coreState runs `tether state` and decodes it both typed and raw.
func coreState(t *testing.T, e *testutil.Env, id string) (*runtime.State, map[string]json.RawMessage) {
	t.Helper()
	out := e.MustTether("state", id)
	var st runtime.State
	raw := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state %s: %v: %q", id, err, out)
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("state %s: %v", id, err)
	}
	return &st, raw
}

func coreLogs(t *testing.T, e *testutil.Env, id string) string {
	t.Helper()
	r := e.Tether("logs", id)
	if r.Code != 0 {
		t.Fatalf("logs %s: exit %d: %s", id, r.Code, r.Stderr)
	}
	return r.Stdout + r.Stderr
}

// coreLogsHave checks that `tether logs` gives stdout on stdout and stderr
// on stderr.
func coreLogsHave(t *testing.T, e *testutil.Env, id, stdout, stderr string) {
	t.Helper()
	r := e.Tether("logs", id)
	if r.Code != 0 || r.Stdout != stdout+"\n" || r.Stderr != stderr+"\n" {
		t.Errorf("logs %s: exit %d, stdout %q, stderr %q; want %q and %q", id, r.Code, r.Stdout, r.Stderr, stdout+"\n", stderr+"\n")
	}
}

func coreEventuallyLogs(t *testing.T, e *testutil.Env, id, want string) {
	t.Helper()
	testutil.Eventually(t, coreWait, fmt.Sprintf("%q in the log of %s", want, id), func() bool {
		return strings.Contains(coreLogs(t, e, id), want)
	})
}

// coreIdentitiesOf reads the recorded shim and init identities.
func coreIdentitiesOf(t *testing.T, e *testutil.Env, ids ...string) []proc.Identity {
	t.Helper()
	var out []proc.Identity
	for _, id := range ids {
		dir := filepath.Join(e.Root, id)
		for _, name := range []string{shimPidFile, initPidFile} {
			ident, err := readPid(dir, name)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if err := ident.Check(); err != nil {
				t.Fatalf("%s %s: %v", id, name, err)
			}
			out = append(out, ident)
		}
	}
	return out
}

// coreAssertGone checks that every process named has exited.
func coreAssertGone(t *testing.T, idents ...proc.Identity) {
	t.Helper()
	for _, ident := range idents {
		if err := ident.Check(); !errors.Is(err, proc.ErrGone) {
			t.Errorf("pid %d still runs after delete (%v)", ident.Pid, err)
		}
	}
}

// coreAssertNothingLeft checks the root holds no container folder, the
// OCI runtime knows no container, and no shim serves this root.
func coreAssertNothingLeft(t *testing.T, e *testutil.Env) {
	t.Helper()
	ents, _ := os.ReadDir(e.Root)
	for _, ent := range ents {
		if ent.Name() != ".oci" && !testutil.IsJournal(ent.Name()) {
			t.Errorf("%s left in the root", ent.Name())
		}
	}
	if list := coreRuntimeList(t, e); len(list) != 0 {
		t.Errorf("%s still knows containers %v", e.Runtime, list)
	}
	if pids := testutil.ShimPids(e.Root); len(pids) != 0 {
		t.Errorf("shims %v still serve %s", pids, e.Root)
	}
}

// coreRuntimeList asks the OCI runtime itself which containers its root
// under tether's root holds.
func coreRuntimeList(t *testing.T, e *testutil.Env) []string {
	t.Helper()
	root := filepath.Join(e.Root, ".oci", e.Runtime)
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil // listing would create it
	}
	out, err := exec.Command(e.Runtime, "--root", root, "list", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("%s list: %v: %s", e.Runtime, err, out)
	}
	return strings.Fields(string(out))
}

// coreMountRefs lists the mounts of path, or of anything under it, in any
// process's mount namespace.
func coreMountRefs(t *testing.T, path string) []string {
	t.Helper()
	refs, err := testutil.MountsOf(path)
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

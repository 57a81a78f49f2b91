package integration

// The operations suite (issue 13): stop with a grace period done in the
// shim, the event stream and its replay from durable records, and
// checkpoint/restore with CRIU, with the real runc and crun. Every
// container has an ID unique to the run and its own cgroupsPath, so
// suites running at the same time never share a cgroup.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// opsWait bounds every wait of this suite: a hang guard, not a speed
// assertion.
const opsWait = 60 * time.Second

// opsID is an ID unique to this run.
func opsID(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// opsBundle writes a busybox bundle running args whose cgroupsPath is its
// own, with the given annotations.
func opsBundle(t *testing.T, e *testutil.Env, annotations map[string]string, args ...string) string {
	t.Helper()
	b := e.Bundle(args...)
	opsSetCgroup(t, b, annotations)
	return b
}

// opsSetCgroup gives the bundle b a cgroupsPath of its own (and the
// annotations, when not nil).
func opsSetCgroup(t *testing.T, b string, annotations map[string]string) {
	t.Helper()
	opsEditSpec(t, b, func(spec *specs.Spec) {
		spec.Linux.CgroupsPath = "/tether-ops/" + opsID("cg")
		if annotations != nil {
			spec.Annotations = annotations
		}
	})
}

// opsEditSpec rewrites the config.json of bundle b through edit.
func opsEditSpec(t *testing.T, b string, edit func(*specs.Spec)) {
	t.Helper()
	path := filepath.Join(b, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	edit(&spec)
	out, err := json.MarshalIndent(&spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// opsRun creates and starts a container through the Go API and deletes it
// (forced) when the test ends, whatever its outcome.
func opsRun(t *testing.T, e *testutil.Env, id, b string) *runtime.Container {
	t.Helper()
	ctx := context.Background()
	c, err := e.Manager().Create(ctx, id, b, runtime.CreateOpts{})
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	opsDeleteLater(t, e, id)
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return c
}

// opsDeleteLater force-deletes container id when the test ends.
func opsDeleteLater(t *testing.T, e *testutil.Env, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opsWait)
		defer cancel()
		if c, err := e.NewManager().Load(ctx, id); err == nil {
			c.Delete(ctx, true)
		}
	})
}

// opsExec starts exec'd process name in c, detached.
func opsExec(t *testing.T, c *runtime.Container, name string, args ...string) {
	t.Helper()
	spec, err := c.ProcessSpec(args)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Exec(context.Background(), runtime.ExecOpts{ID: name, Process: spec}); err != nil {
		t.Fatalf("exec %s: %v", name, err)
	}
}

// opsLog is the decoded stdout of container id's log.
func opsLog(t *testing.T, e *testutil.Env, id string) string {
	t.Helper()
	return e.Tether("logs", id).Stdout
}

// opsAwaitLog waits until the log of id holds want.
func opsAwaitLog(t *testing.T, e *testutil.Env, id, want string) {
	t.Helper()
	testutil.Eventually(t, opsWait, want+" in the log of "+id, func() bool {
		return strings.Contains(opsLog(t, e, id), want)
	})
}

// trapLoop is a shell loop that runs on its handler for sig, exiting with
// code; "" as code ignores sig.
func trapLoop(sig, code string) []string {
	action := "echo got-" + sig + "; exit " + code
	if code == "" {
		action = ""
	}
	return []string{"sh", "-c", "trap '" + action + "' " + sig + "; echo ready; while true; do sleep 0.1; done"}
}

// TestOpsStop: stop sends TERM and gives init the grace period (it exits
// with its own code), sends KILL once the grace period has passed (137,
// not before), uses the bundle's stop signal annotation, thaws a paused
// container so it can act on the signal, answers a stopped container with
// its record, and finishes in the shim when the caller goes away.
func TestOpsStop(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		t.Run("term-handled", func(t *testing.T) {
			id := opsID("stopterm")
			c := opsRun(t, e, id, opsBundle(t, e, nil, trapLoop("TERM", "7")...))
			opsAwaitLog(t, e, id, "ready")
			exit, err := c.Stop(ctx, runtime.StopOpts{Grace: 30 * time.Second})
			if err != nil || exit.Status != 7 {
				t.Fatalf("stop: %+v, %v; want status 7 from the TERM handler", exit, err)
			}
			opsAwaitLog(t, e, id, "got-TERM")
			again, err := c.Stop(ctx, runtime.StopOpts{})
			if err != nil || again.Status != 7 || !again.ExitedAt.Equal(exit.ExitedAt) {
				t.Errorf("stop of a stopped container: %+v, %v; want the same record %+v", again, err, exit)
			}
		})
		t.Run("kill-after-grace", func(t *testing.T) {
			id := opsID("stopkill")
			c := opsRun(t, e, id, opsBundle(t, e, nil, trapLoop("TERM", "")...))
			opsAwaitLog(t, e, id, "ready")
			begin := time.Now()
			exit, err := c.Stop(ctx, runtime.StopOpts{Grace: 1500 * time.Millisecond})
			took := time.Since(begin)
			if err != nil || exit.Status != 137 {
				t.Fatalf("stop: %+v, %v; want 137 (SIGKILL after the grace period)", exit, err)
			}
			if took < 1500*time.Millisecond {
				t.Errorf("stop took %v: KILL came before the 1.5 s grace period", took)
			}
		})
		t.Run("annotation", func(t *testing.T) {
			id := opsID("stopann")
			b := opsBundle(t, e, map[string]string{runtime.StopSignalAnnotation: "SIGUSR1"}, trapLoop("USR1", "9")...)
			c := opsRun(t, e, id, b)
			opsAwaitLog(t, e, id, "ready")
			exit, err := c.Stop(ctx, runtime.StopOpts{Grace: 30 * time.Second})
			if err != nil || exit.Status != 9 {
				t.Fatalf("stop: %+v, %v; want 9: the annotation's SIGUSR1 handler", exit, err)
			}
		})
		t.Run("paused", func(t *testing.T) {
			id := opsID("stoppaused")
			c := opsRun(t, e, id, opsBundle(t, e, nil, trapLoop("TERM", "7")...))
			opsAwaitLog(t, e, id, "ready")
			if err := c.Pause(ctx); err != nil {
				t.Fatal(err)
			}
			exit, err := c.Stop(ctx, runtime.StopOpts{Grace: 30 * time.Second})
			if err != nil || exit.Status != 7 {
				t.Fatalf("stop of a paused container: %+v, %v; want 7: thawed, it ran its TERM handler", exit, err)
			}
		})
		t.Run("caller-gone", func(t *testing.T) { opsStopCallerGone(t, e) })
	})
}

// opsStopCallerGone: a stop whose caller goes away (its context ends right
// after the request went out, as when the CLI is killed) still kills the
// container after the grace period: the shim does it, and a new manager
// sees 137.
func opsStopCallerGone(t *testing.T, e *testutil.Env) {
	id := opsID("stopgone")
	c := opsRun(t, e, id, opsBundle(t, e, nil, trapLoop("TERM", "")...))
	opsAwaitLog(t, e, id, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.Stop(ctx, runtime.StopOpts{Grace: 2 * time.Second})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop with a 300 ms context: %v; want the context's deadline (the stop takes 2 s)", err)
	}
	c2, err := e.NewManager().Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), opsWait)
	defer wcancel()
	exit, err := c2.Wait(wctx)
	if err != nil || exit.Status != 137 {
		t.Fatalf("wait after the caller left: %+v, %v; want 137: the shim finished the stop", exit, err)
	}
}

// opsCollect reads events until want types have been seen in order for
// id (others in between are allowed) or opsWait passes.
func opsCollect(t *testing.T, ch <-chan runtime.LifecycleEvent, want []string) []runtime.LifecycleEvent {
	t.Helper()
	var got []runtime.LifecycleEvent
	timeout := time.After(opsWait)
	next := 0
	for next < len(want) {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event stream closed after %v; want %v", opsTypes(got), want)
			}
			got = append(got, ev)
			if ev.Type == want[next] {
				next++
			}
		case <-timeout:
			t.Fatalf("events %v; want %v in this order", opsTypes(got), want)
		}
	}
	return got
}

func opsTypes(evs []runtime.LifecycleEvent) []string {
	var out []string
	for _, ev := range evs {
		s := ev.Type
		if ev.Exec != "" {
			s += "(" + ev.Exec + ")"
		}
		out = append(out, s)
	}
	return out
}

// opsFind returns the first event of type typ (for exec, if not "").
func opsFind(evs []runtime.LifecycleEvent, typ, exec string) *runtime.LifecycleEvent {
	for i := range evs {
		if evs[i].Type == typ && evs[i].Exec == exec {
			return &evs[i]
		}
	}
	return nil
}

// TestOpsEventsLive: a stream opened before anything happens gets, from
// the container's shim, created, started, exec_started, exec_exited (with
// its status), paused, resumed, stop_signaled, exited (with its status)
// and deleted, in that order, and nothing of a container it filters out.
func TestOpsEventsLive(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		id := opsID("evlive")
		ch, err := e.Manager().Events(ctx, runtime.EventsOpts{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		other := opsRun(t, e, opsID("evother"), opsBundle(t, e, nil, "sleep", "1000"))
		c := opsRun(t, e, id, opsBundle(t, e, nil, trapLoop("TERM", "5")...))
		opsAwaitLog(t, e, id, "ready")
		opsExec(t, c, "job", "sh", "-c", "exit 4")
		if _, err := c.WaitExec(ctx, "job"); err != nil {
			t.Fatal(err)
		}
		if err := c.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Stop(ctx, runtime.StopOpts{Grace: 30 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, false); err != nil {
			t.Fatal(err)
		}
		want := []string{runtime.EventCreated, runtime.EventStarted, runtime.EventExecStarted, runtime.EventExecExited,
			runtime.EventPaused, runtime.EventResumed, runtime.EventStopSignaled, runtime.EventExited, runtime.EventDeleted}
		got := opsCollect(t, ch, want)
		for _, ev := range got {
			if ev.ID != id {
				t.Errorf("event %+v of another container came through the filter id=%s", ev, id)
			}
		}
		if ex := opsFind(got, runtime.EventExecExited, "job"); ex == nil || ex.ExitStatus == nil || *ex.ExitStatus != 4 {
			t.Errorf("exec_exited of job: %+v; want exit_status 4", ex)
		}
		if ex := opsFind(got, runtime.EventExited, ""); ex == nil || ex.ExitStatus == nil || *ex.ExitStatus != 5 || ex.ShimPid == 0 {
			t.Errorf("exited: %+v; want exit_status 5 and the shim's pid", ex)
		}
		other.Delete(ctx, true)
	})
}

// TestOpsEventsReplay: with no stream open, a container runs an exec that
// exits 6 and then is killed (137). A new manager's stream with Since
// replays created, started, exec_started, exec_exited (6), exited (137).
// The journal then loses everything (removed, as a crash of the machine
// may lose its unsynced tail): the replay still has both exits, rebuilt
// from the durable exit records (from_record), with their statuses.
func TestOpsEventsReplay(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx := context.Background()
		since := time.Now()
		id := opsID("evreplay")
		c := opsRun(t, e, id, opsBundle(t, e, nil, "sleep", "1000"))
		opsExec(t, c, "job", "sh", "-c", "exit 6")
		if _, err := c.WaitExec(ctx, "job"); err != nil {
			t.Fatal(err)
		}
		if err := c.Kill(ctx, syscall.SIGKILL, false); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		// Wait answers from the durable exit record, which the shim
		// writes just before its journal line: the replay below is of a
		// journal that has the exit, so wait for its line. (A replay in
		// between rightly gives the record's exit, from_record true.)
		testutil.Eventually(t, opsWait, "init's exit in the journal", func() bool {
			b, _ := os.ReadFile(filepath.Join(e.Root, "events.log"))
			for _, line := range strings.Split(string(b), "\n") {
				var ev runtime.LifecycleEvent
				if json.Unmarshal([]byte(line), &ev) == nil && ev.ID == id && ev.Type == runtime.EventExited {
					return true
				}
			}
			return false
		})
		replay := func(what string) []runtime.LifecycleEvent {
			t.Helper()
			rctx, cancel := context.WithTimeout(ctx, opsWait)
			defer cancel()
			ch, err := e.NewManager().Events(rctx, runtime.EventsOpts{Since: since, Until: time.Now(), ID: id})
			if err != nil {
				t.Fatal(err)
			}
			var got []runtime.LifecycleEvent
			for ev := range ch {
				got = append(got, ev)
			}
			if rctx.Err() != nil {
				t.Fatalf("%s: the replay did not end at Until", what)
			}
			return got
		}
		got := replay("journal")
		want := []string{runtime.EventCreated, runtime.EventStarted, runtime.EventExecStarted, runtime.EventExecExited, runtime.EventExited}
		if types := opsTypes(got); !slices.Equal(opsPlain(got), want) {
			t.Fatalf("replay from the journal: %v; want %v", types, want)
		}
		opsCheckExits(t, "journal", got, false)
		os.Remove(filepath.Join(e.Root, "events.log"))
		os.Remove(filepath.Join(e.Root, "events.log.1"))
		got = replay("records")
		if !slices.Equal(opsPlain(got), []string{runtime.EventExecExited, runtime.EventExited}) {
			t.Fatalf("replay without the journal: %v; want exec_exited, exited from the exit records", opsTypes(got))
		}
		opsCheckExits(t, "records", got, true)
	})
}

func opsPlain(evs []runtime.LifecycleEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// opsCheckExits checks the replayed exit statuses: exec job 6 (its own),
// init 137 (SIGKILL).
func opsCheckExits(t *testing.T, what string, got []runtime.LifecycleEvent, fromRecord bool) {
	t.Helper()
	ex := opsFind(got, runtime.EventExecExited, "job")
	if ex == nil || ex.ExitStatus == nil || *ex.ExitStatus != 6 || ex.FromRecord != fromRecord {
		t.Errorf("%s: exec_exited %+v; want exit_status 6, from_record %v", what, ex, fromRecord)
	}
	in := opsFind(got, runtime.EventExited, "")
	if in == nil || in.ExitStatus == nil || *in.ExitStatus != 137 || in.FromRecord != fromRecord {
		t.Errorf("%s: exited %+v; want exit_status 137, from_record %v", what, in, fromRecord)
	}
}

// TestOpsEventsOOM: a container with a 16 MiB limit allocating until the
// OOM killer kills it gives, live, an oom event (count 1) and then exited
// with 137, oom_killed and the count; a new manager's replay from the
// journal has both, and from the exit record alone (journal gone) the
// exited event still carries the OOM flag. `tether events --format json`
// prints the oom line.
func TestOpsEventsOOM(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		since := time.Now()
		id := opsID("evoom")
		ch, err := e.Manager().Events(ctx, runtime.EventsOpts{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		b := oomBundle(t, e, "0")
		opsSetCgroup(t, b, nil)
		c := opsRun(t, e, id, b)
		if rec, err := c.Wait(ctx); err != nil || rec.Status != 137 || !rec.OOMKilled {
			t.Fatalf("wait: %+v, %v; want 137, oom_killed", rec, err)
		}
		got := opsCollect(t, ch, []string{runtime.EventCreated, runtime.EventStarted, runtime.EventOOM, runtime.EventExited})
		opsCheckOOM(t, "live", got, false)

		replay := func(what string) []runtime.LifecycleEvent {
			t.Helper()
			rctx, rcancel := context.WithTimeout(ctx, opsWait)
			defer rcancel()
			ch, err := e.NewManager().Events(rctx, runtime.EventsOpts{Since: since, Until: time.Now(), ID: id})
			if err != nil {
				t.Fatal(err)
			}
			var got []runtime.LifecycleEvent
			for ev := range ch {
				got = append(got, ev)
			}
			if rctx.Err() != nil {
				t.Fatalf("%s: the replay did not end at Until", what)
			}
			return got
		}
		got = replay("journal")
		if want := []string{runtime.EventCreated, runtime.EventStarted, runtime.EventOOM, runtime.EventExited}; !slices.Equal(opsPlain(got), want) {
			t.Fatalf("replay from the journal: %v; want %v", opsTypes(got), want)
		}
		opsCheckOOM(t, "journal", got, false)

		out := e.MustTether("events", "--since", since.Format(time.RFC3339Nano), "--until", "0s", "--filter", "id="+id, "--format", "json")
		var oomLine *runtime.LifecycleEvent
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev runtime.LifecycleEvent
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("events --format json line %q: %v", line, err)
			}
			if ev.Type == runtime.EventOOM {
				oomLine = &ev
			}
		}
		if oomLine == nil || oomLine.OOMKills != 1 || !strings.Contains(out, `"type":"oom"`) || !strings.Contains(out, `"oom_killed":true`) {
			t.Errorf("events --format json: no oom line with oom_kills 1, or no exited with oom_killed:\n%s", out)
		}
		if text := e.MustTether("events", "--since", since.Format(time.RFC3339Nano), "--until", "0s", "--filter", "id="+id); !strings.Contains(text, " oom "+id+" oom_kills=1") ||
			!strings.Contains(text, "exit_status=137 oom_killed=true oom_kills=1") {
			t.Errorf("events (text) lack the oom line or the exited flag:\n%s", text)
		}

		os.Remove(filepath.Join(e.Root, "events.log"))
		os.Remove(filepath.Join(e.Root, "events.log.1"))
		got = replay("records")
		if !slices.Equal(opsPlain(got), []string{runtime.EventExited}) {
			t.Fatalf("replay without the journal: %v; want exited from the exit record", opsTypes(got))
		}
		opsCheckOOM(t, "records", got, true)
	})
}

// opsCheckOOM checks the OOM events of got: an oom event with a count of
// 1 before exited (unless fromRecord: the records hold exits only), and
// exited with 137, oom_killed and a count of 1.
func opsCheckOOM(t *testing.T, what string, got []runtime.LifecycleEvent, fromRecord bool) {
	t.Helper()
	if !fromRecord {
		if o := opsFind(got, runtime.EventOOM, ""); o == nil || o.OOMKills != 1 || o.ShimPid == 0 {
			t.Errorf("%s: oom %+v; want oom_kills 1 and the shim's pid", what, o)
		}
	}
	ex := opsFind(got, runtime.EventExited, "")
	if ex == nil || ex.ExitStatus == nil || *ex.ExitStatus != 137 || !ex.OOMKilled || ex.OOMKills != 1 || ex.FromRecord != fromRecord {
		t.Errorf("%s: exited %+v; want exit_status 137, oom_killed, oom_kills 1, from_record %v", what, ex, fromRecord)
	}
}

// TestOpsEventsOOMChild: the OOM killer kills a child of init (the
// biggest process of the 16 MiB cgroup) while init lives on and exits 3:
// the oom event comes as the cgroup reports it, before exited, and
// exited says 3 with oom_killed and the count, as the exit record does.
func TestOpsEventsOOMChild(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		id := opsID("evoomc")
		ch, err := e.Manager().Events(ctx, runtime.EventsOpts{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		b := oomBundle(t, e, "0")
		opsEditSpec(t, b, func(spec *specs.Spec) {
			spec.Process.Args = []string{"sh", "-c", `sh -c 'x=0123456789abcdef; while :; do x=$x$x; done'; echo "child $?"; sleep 1; exit 3`}
		})
		opsSetCgroup(t, b, nil)
		c := opsRun(t, e, id, b)
		if rec, err := c.Wait(ctx); err != nil || rec.Status != 3 || !rec.OOMKilled || rec.OOMKills != 1 {
			t.Fatalf("wait: %+v, %v; want 3 (init's own), oom_killed, 1 kill", rec, err)
		}
		opsAwaitLog(t, e, id, "child 137")
		got := opsCollect(t, ch, []string{runtime.EventCreated, runtime.EventStarted, runtime.EventOOM, runtime.EventExited})
		if o := opsFind(got, runtime.EventOOM, ""); o == nil || o.OOMKills != 1 {
			t.Errorf("oom %+v; want oom_kills 1", o)
		}
		ex := opsFind(got, runtime.EventExited, "")
		if ex == nil || ex.ExitStatus == nil || *ex.ExitStatus != 3 || !ex.OOMKilled || ex.OOMKills != 1 {
			t.Errorf("exited %+v; want exit_status 3, oom_killed, oom_kills 1", ex)
		}
	})
}

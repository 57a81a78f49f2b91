package integration

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// oomBundle is a busybox bundle limited to 16 MiB of memory and no swap
// whose shell waits for the file /tmp/go inside the container (or for
// delay seconds), then doubles a string until the OOM killer kills it.
func oomBundle(t *testing.T, e *testutil.Env, delay string) string {
	b := e.Bundle("sh", "-c", "sleep "+delay+"; x=0123456789abcdef; while :; do x=$x$x; done")
	coreEditConfig(t, b, func(cfg map[string]any) {
		linux := cfg["linux"].(map[string]any)
		res, _ := linux["resources"].(map[string]any)
		if res == nil {
			res = map[string]any{}
			linux["resources"] = res
		}
		res["memory"] = map[string]any{"limit": 16 << 20, "swap": 16 << 20}
	}, "")
	return b
}

// oomCheck asserts the container's state and list entry say OOM killed.
func oomCheck(t *testing.T, e *testutil.Env, id string) {
	t.Helper()
	st, _ := coreState(t, e, id)
	if st.Status != runtime.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != 137 || !st.OOMKilled || st.OOMKills != 1 {
		t.Fatalf("state %+v (exit %v): want stopped, exit_status 137, oom_killed with 1 kill", st, deref(st.ExitStatus))
	}
	out := e.MustTether("list", "--format", "json")
	var list []runtime.State
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --format json: %v: %q", err, out)
	}
	if len(list) != 1 || list[0].ID != id || !list[0].OOMKilled || list[0].OOMKills != 1 {
		t.Errorf("list --format json does not show the OOM kill: %s", out)
	}
	if out := e.MustTether("list"); !strings.Contains(out, " 137 (oom) ") {
		t.Errorf("list's table does not show the OOM kill in EXIT: %q", out)
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestOOMKillRecorded: a container allocating past its 16 MiB limit is
// killed by the kernel; its exit record says 137 and oom_killed, as state
// and list show it.
func TestOOMKillRecorded(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		b := oomBundle(t, e, "0")
		e.MustTether("run", "-d", "--bundle", b, "oom")
		if r := e.Tether("wait", "oom"); r.Code != 137 {
			t.Fatalf("wait: exit %d (stderr %q), want 137", r.Code, r.Stderr)
		}
		oomCheck(t, e, "oom")
		e.MustTether("delete", "oom")
	})
}

// TestOOMKillWhileManagerDown: the manager waiting for the container is
// killed -9 before the OOM; a manager started after it still sees 137 and
// oom_killed, from the record the shim wrote alone.
func TestOOMKillWhileManagerDown(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		b := oomBundle(t, e, "3")
		e.MustTether("run", "-d", "--bundle", b, "oomd")
		waiter := e.Command("wait", "oomd")
		if err := waiter.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if st, _ := coreState(t, e, "oomd"); st.Status != runtime.StatusRunning {
			waiter.Process.Kill()
			waiter.Wait()
			t.Fatalf("before the manager's kill: %+v, want running (the OOM comes 3 s after start)", st)
		}
		if err := waiter.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := waiter.Wait(); err == nil || waiter.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("the waiting manager was not killed: %v", err)
		}
		// no manager runs now; the OOM happens about 3 s after start
		testutil.Eventually(t, 60*time.Second, "the container to be stopped", func() bool {
			st, _ := coreState(t, e, "oomd")
			return st.Status == runtime.StatusStopped
		})
		oomCheck(t, e, "oomd")
		if r := e.Tether("wait", "oomd"); r.Code != 137 {
			t.Errorf("wait from a new manager: exit %d, want 137", r.Code)
		}
		e.MustTether("delete", "oomd")
	})
}

package integration

// The operations suite through the CLI: every call a fresh manager.

import (
	"bufio"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/runtime"
)

// TestOpsCLI: 'tether stop -t 2' killed with SIGKILL right after it sent
// its request still ends the container (the shim finishes the stop: 137
// after the grace period); 'tether stop' exits once stopped; 'tether
// events --since --until 0s --format json' replays the container's life
// as JSON lines; a bad --filter or --since is one line and exit 2.
func TestOpsCLI(t *testing.T) {
	testutil.EachRuntime(t, func(t *testing.T, e *testutil.Env) {
		since := time.Now().UTC().Format(time.RFC3339Nano)
		id := opsID("clistop")
		e.MustTether("run", "-d", "--bundle", opsBundle(t, e, nil, trapLoop("TERM", "")...), id)
		opsDeleteLater(t, e, id)
		opsAwaitLog(t, e, id, "ready")
		cmd := e.Command("stop", "-t", "2", id)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, opsWait, "the stop signal journaled", func() bool {
			return strings.Contains(e.Tether("events", "--since", since, "--until", "0s", "--filter", "id="+id).Stdout, runtime.EventStopSignaled)
		})
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		r := e.Tether("wait", id)
		if r.Code != 137 {
			t.Fatalf("wait after the stop's CLI was killed: exit %d (%s); want 137: the shim finished the stop", r.Code, r.Stderr)
		}

		id2 := opsID("clistop2")
		e.MustTether("run", "-d", "--bundle", opsBundle(t, e, nil, trapLoop("TERM", "5")...), id2)
		opsDeleteLater(t, e, id2)
		opsAwaitLog(t, e, id2, "ready")
		e.MustTether("stop", id2)
		if st, _ := coreState(t, e, id2); st.Status != runtime.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != 5 {
			t.Fatalf("state after stop: %+v; want stopped with 5 (its TERM handler)", st)
		}

		out := e.MustTether("events", "--since", since, "--until", "0s", "--filter", "id="+id2, "--format", "json")
		var types []string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var ev runtime.LifecycleEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("events --format json line %q: %v", sc.Text(), err)
			}
			if ev.ID != id2 {
				t.Errorf("event of %s through --filter id=%s", ev.ID, id2)
			}
			types = append(types, ev.Type)
		}
		want := []string{runtime.EventCreated, runtime.EventStarted, runtime.EventStopSignaled, runtime.EventExited}
		if strings.Join(types, ",") != strings.Join(want, ",") {
			t.Errorf("events --format json: %v; want %v", types, want)
		}
		for _, bad := range [][]string{{"events", "--filter", "name=x"}, {"events", "--since", "yesterday-ish"}} {
			r := e.Tether(bad...)
			if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
				t.Errorf("tether %v: exit %d, stderr %q; want 2 and one line", bad, r.Code, r.Stderr)
			}
		}
	})
}

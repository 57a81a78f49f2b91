package coretest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/shim"
)

// allocate doubles a shell string until the OOM killer ends the shell.
const allocate = "x=0123456789abcdef; while :; do x=$x$x; done"

// TestCoreOOMEvents: in a container limited to 16 MiB (no swap), a child
// of init allocates until the OOM killer kills it: an EventOOM with one
// kill comes while init runs on. Then init itself allocates: its exit
// record says oom_killed with two kills before anyone is told, the
// EventOOM for the second kill comes after that record is durable and
// right before init's EventExit (137).
func TestCoreOOMEvents(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) { coreOOMEvents(t, rt) })
	}
}

func coreOOMEvents(t *testing.T, rt string) {
	e := testutil.NewEnv(t, rt)
	id := fmt.Sprintf("oomev-%s-%d", rt, os.Getpid())
	script := "sh -c '" + allocate + "'; echo child-killed; while [ ! -e /go ]; do sleep 0.05; done; " + allocate
	b := e.BundleWith(bundle.Options{Args: []string{"sh", "-c", script}})
	limitMemory(t, b, 16<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	var out testutil.Buffer
	core, folder := newCore(ctx, t, e, id, b, shim.Options{InitIO: shim.IO{Stdout: &out}})
	events := core.Subscribe()
	defer events.Close()
	if _, err := core.Create(ctx); err != nil {
		t.Fatalf("create: %v", err)
	}
	defer core.Delete(context.Background(), true)
	if err := core.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}

	// a child killed: told live, init runs on
	ev := nextEvent(t, ctx, events)
	if ev.Kind != shim.EventOOM || ev.OOM == nil || ev.OOM.Kills != 1 || ev.OOM.Time.IsZero() {
		t.Fatalf("first event %+v (oom %+v): want an OOM event with 1 kill", ev, ev.OOM)
	}
	if st := core.State(); st.Status != shim.StatusRunning {
		t.Fatalf("after a child's OOM kill the container is %s, want running", st.Status)
	}
	testutil.Eventually(t, wait, "init to go on after its child's OOM kill", func() bool {
		return strings.Contains(out.String(), "child-killed")
	})

	// init killed: the record first, then oom, then exit
	if err := os.WriteFile(filepath.Join(b, "rootfs", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ev = nextEvent(t, ctx, events)
	if ev.Kind != shim.EventOOM || ev.OOM == nil || ev.OOM.Kills != 2 {
		t.Fatalf("second event %+v (oom %+v): want an OOM event with 2 kills", ev, ev.OOM)
	}
	if r, err := folder.Init().ReadExit(); err != nil || r.Status != 137 || !r.OOMKilled || r.OOMKills != 2 {
		t.Fatalf("when init's OOM kill was told, its exit record was %+v, %v: want 137, oom_killed, 2 kills", r, err)
	}
	ev = nextEvent(t, ctx, events)
	if ev.Kind != shim.EventExit || ev.Exec != "" || ev.Exit.Status != 137 || !ev.Exit.OOMKilled {
		t.Fatalf("third event %+v: want init's exit, 137, oom_killed", ev)
	}
}

// nextEvent is the subscription's next event within wait.
func nextEvent(t *testing.T, ctx context.Context, sub *shim.Subscription) shim.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for an event: %v", err)
	}
	return ev
}

// limitMemory sets the bundle's memory limit, and memory+swap to the same
// value (no swap).
func limitMemory(t *testing.T, bundleDir string, limit int64) {
	t.Helper()
	path := filepath.Join(bundleDir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	if b, err = json.Marshal(&spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

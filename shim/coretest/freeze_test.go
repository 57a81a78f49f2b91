package coretest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/crilog"
	"github.com/tether-run/tether/internal/proc"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/shim"
	"github.com/tether-run/tether/store"
)

// TestFreezeThaw: an upgrade abandoned after the freeze (shim.Freeze, then
// Thaw) leaves the core as it was, however often: a counter's log has no
// gap and no duplicate across 20 freezes, an exec'd process that exits
// while the core is frozen stays a zombie (the reaper is held) and is
// recorded with its true status after the thaw, and a second Freeze while
// frozen is refused. An exec whose output goes to a front end's sink makes
// the container not upgradable (shim.ErrNotUpgradable), and so does a
// stop under way.
func TestFreezeThaw(t *testing.T) {
	for _, rt := range testutil.Runtimes {
		t.Run(rt, func(t *testing.T) { freezeThaw(t, rt) })
	}
}

func freezeThaw(t *testing.T, rt string) {
	e := testutil.NewEnv(t, rt)
	id := "frz" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	b := filepath.Join(e.Root, "bundle")
	counter := `i=0; while :; do echo $i; i=$((i+1)); [ $((i%20)) -eq 0 ] && usleep 20000; done`
	if err := bundle.Write(b, bundle.Options{Args: []string{"sh", "-c", counter}}); err != nil {
		t.Fatal(err)
	}
	folder := store.At(e.Root, id)
	if err := folder.Make(); err != nil {
		t.Fatal(err)
	}
	boot, err := proc.BootID()
	if err != nil {
		t.Fatal(err)
	}
	rec := &store.Record{ID: id, Bundle: b, Runtime: rt, RuntimeRoot: filepath.Join(e.Root, ".oci", rt),
		CreatedAt: time.Now().UTC(), BootID: boot}
	if err := folder.WriteRecord(rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	core, err := shim.New(ctx, shim.Options{Store: folder, Record: rec, NoFolderWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()
	if _, err := core.Create(ctx); err != nil {
		t.Fatalf("create: %v", err)
	}
	defer core.Delete(context.Background(), true)
	if err := core.Start(ctx); err != nil {
		t.Fatal(err)
	}
	spec := specs.Process{Args: []string{"sh", "-c", "while [ ! -e /exec-exit ]; do usleep 5000; done; exit 4"}, Cwd: "/",
		Env: []string{"PATH=/bin"}}
	xpid, _, err := core.Exec(ctx, shim.ExecConfig{ID: "x", Process: spec})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		h, err := core.Freeze(ctx)
		if err != nil {
			t.Fatalf("freeze %d: %v", i, err)
		}
		if h.Init.Stdout < 3 || h.Init.Stderr < 3 || h.Init.Status != shim.StatusRunning || len(h.Execs) != 1 {
			t.Fatalf("freeze %d: handoff %+v", i, h)
		}
		if _, err := core.Freeze(ctx); err == nil {
			t.Fatal("a second freeze while frozen was accepted")
		}
		if i == 10 {
			os.WriteFile(filepath.Join(b, "rootfs", "exec-exit"), nil, 0o644)
			testutil.Eventually(t, wait, "the exec to exit into a zombie of the frozen core", func() bool {
				return slicesHas(testutil.ZombieChildren(os.Getpid()), xpid)
			})
		} else {
			time.Sleep(10 * time.Millisecond) // output piles up in the pipe
		}
		core.Thaw(h)
	}
	exit, err := core.Wait(ctx, "x")
	if err != nil || exit.Status != 4 || exit.Reason != "" {
		t.Fatalf("exec that exited while frozen: %+v, %v; want status 4", exit, err)
	}
	_, _, err = core.Exec(ctx, shim.ExecConfig{ID: "sink", Process: specs.Process{Args: []string{"sleep", "1000"}, Cwd: "/", Env: []string{"PATH=/bin"}},
		IO: shim.IO{Stdout: &testutil.Buffer{}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Freeze(ctx); !errors.Is(err, shim.ErrNotUpgradable) || !strings.Contains(err.Error(), "exec sink") {
		t.Errorf("freeze with a front end's sink: %v, want ErrNotUpgradable naming exec sink", err)
	}
	time.Sleep(50 * time.Millisecond)
	// A stop under way (init, pid 1 of its namespace, ignores TERM: the
	// grace period runs) is not upgradable: its SIGKILL after the grace
	// period lives in this image's memory.
	stopped := make(chan error, 1)
	go func() {
		exit, err := core.Stop(ctx, syscall.SIGTERM, 2*time.Second)
		if err == nil && exit.Status != 137 {
			err = fmt.Errorf("exit %+v, want 137", exit)
		}
		stopped <- err
	}()
	var ferr error
	testutil.Eventually(t, wait, "a freeze during the stop to be refused", func() bool {
		h, err := core.Freeze(ctx)
		if err == nil {
			core.Thaw(h) // never upgradable here (the sink), but no hang either
			return false
		}
		ferr = err // before the stop began: the sink's refusal
		return strings.Contains(err.Error(), "being stopped")
	})
	if !errors.Is(ferr, shim.ErrNotUpgradable) || !strings.Contains(ferr.Error(), "being stopped") {
		t.Errorf("freeze during a stop: %v, want ErrNotUpgradable saying it is being stopped", ferr)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	var out, errb strings.Builder
	if err := crilog.Dump(folder.Init().LogPath(), crilog.ReadOptions{Tail: -1}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	prev := -1
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for _, l := range lines {
		n, err := strconv.Atoi(l)
		if err != nil || (prev >= 0 && n != prev+1) {
			t.Fatalf("log line %q after %d: a gap, a duplicate or a torn line across the freezes", l, prev)
		}
		prev = n
	}
	if len(lines) < 100 {
		t.Errorf("only %d lines logged", len(lines))
	}
}

func slicesHas(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

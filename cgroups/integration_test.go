package cgroups_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tether-run/tether/bundle"
	"github.com/tether-run/tether/cgroups"
	"github.com/tether-run/tether/internal/testutil"
	"github.com/tether-run/tether/oci"
)

// These tests start real containers with runc and crun on a busybox
// bundle and check the values read from their cgroups against the limits
// the bundle set. The test process is a child subreaper while they run,
// so each container's init is reparented to it and reaped by it.

var seq atomic.Int64

// ctr is one container started by a test.
type ctr struct {
	rt  *oci.Runtime
	id  string
	pid int
	cg  *cgroups.Cgroup
}

func subreaper(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// create makes (but does not start) a container running args with the
// given resources, and registers its forced delete and reaping.
func create(t *testing.T, rtName string, res *specs.LinuxResources, args ...string) *ctr {
	t.Helper()
	testutil.RequireRuntime(t, rtName)
	subreaper(t)
	dir, err := os.MkdirTemp("", "cg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := filepath.Join(dir, "b")
	if err := bundle.Write(b, bundle.Options{Args: args}); err != nil {
		t.Fatal(err)
	}
	setResources(t, b, res)
	c := &ctr{rt: &oci.Runtime{Command: rtName, Root: filepath.Join(dir, "r"), LogDir: dir, Timeout: 60 * time.Second},
		id: fmt.Sprintf("cg%d-%d", os.Getpid(), seq.Add(1))}
	ctx := context.Background()
	pidFile := filepath.Join(dir, "pid")
	if err := c.rt.Create(ctx, c.id, b, &oci.CreateOpts{PidFile: pidFile}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.delete(t) })
	if c.pid, err = oci.ReadPidFile(pidFile); err != nil {
		t.Fatal(err)
	}
	if c.cg, err = cgroups.Load(c.pid); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s container %s: init %d, cgroup %s", rtName, c.id, c.pid, c.cg)
	return c
}

func (c *ctr) start(t *testing.T) {
	t.Helper()
	if err := c.rt.Start(context.Background(), c.id); err != nil {
		t.Fatal(err)
	}
}

// delete force-deletes the container and reaps its init (once).
func (c *ctr) delete(t *testing.T) {
	if c.rt == nil {
		return
	}
	if err := c.rt.Delete(context.Background(), c.id, &oci.DeleteOpts{Force: true}); err != nil && !errors.Is(err, oci.ErrNotFound) {
		t.Errorf("delete %s: %v", c.id, err)
	}
	c.wait()
	c.rt = nil
}

// wait reaps the container's init and returns its wait status.
func (c *ctr) wait() unix.WaitStatus {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(c.pid, &ws, 0, nil)
		if err != unix.EINTR {
			return ws
		}
	}
}

func setResources(t *testing.T, b string, res *specs.LinuxResources) {
	t.Helper()
	path := filepath.Join(b, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	res.Devices = spec.Linux.Resources.Devices
	spec.Linux.Resources = res
	if data, err = json.Marshal(&spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func memLimit(n int64) *specs.LinuxMemory { return &specs.LinuxMemory{Limit: &n, Swap: &n} }

func stats(t *testing.T, c *ctr) *cgroups.Stats {
	t.Helper()
	s, err := c.cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// eachRuntime runs f once with runc and once with crun.
func eachRuntime(t *testing.T, f func(t *testing.T, rt string)) {
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) { f(t, rt) })
	}
}

func TestRealMemoryAndPids(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		pids := int64(20)
		c := create(t, rt, &specs.LinuxResources{Memory: memLimit(16 << 20), Pids: &specs.LinuxPids{Limit: &pids}},
			"sh", "-c", "for i in 1 2 3 4 5; do sleep 1000 & done; wait")
		c.start(t)
		var s *cgroups.Stats
		// sh and five sleeps, each single-threaded: exactly 6 tasks once
		// the loop has run
		testutil.Eventually(t, 10*time.Second, "6 tasks in pids.current", func() bool {
			s = stats(t, c)
			return s.Pids != nil && s.Pids.Current == 6
		})
		if s.Pids.Limit != 20 {
			t.Errorf("pids limit %d, want 20", s.Pids.Limit)
		}
		m := s.Memory
		if m == nil {
			t.Fatal("no memory stats")
		}
		t.Logf("memory v%d: usage %d limit %d swap limit %d rss %d cache %d; pids v%d %d/%d",
			m.Version, m.Usage, m.Limit, m.SwapLimit, m.RSS, m.Cache, s.Pids.Version, s.Pids.Current, s.Pids.Limit)
		if m.Limit != 16<<20 {
			t.Errorf("memory limit %d, want %d (16 MiB)", m.Limit, 16<<20)
		}
		if m.Usage == 0 || m.Usage > m.Limit {
			t.Errorf("memory usage %d, want above 0 and at most the limit", m.Usage)
		}
		// swap = memory in the bundle: no room for swap on either version
		if m.SwapLimit != 0 {
			t.Errorf("swap limit %d, want 0 (memory+swap == memory)", m.SwapLimit)
		}
		if m.OOMKills != 0 || len(m.Stat) == 0 {
			t.Errorf("oom kills %d (want 0), memory.stat %v", m.OOMKills, m.Stat)
		}
	})
}

func TestRealCPU(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		quota, period := int64(10000), uint64(100000)
		c := create(t, rt, &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}},
			"sh", "-c", "while :; do :; done")
		before := stats(t, c).CPU
		c.start(t)
		var s *cgroups.CPU
		testutil.Eventually(t, 30*time.Second, "100ms of CPU used and a throttled period", func() bool {
			s = stats(t, c).CPU
			return s.UsageNanos >= before.UsageNanos+100e6 && s.ThrottledPeriods > 0
		})
		t.Logf("cpu v%d: usage %v (user %v system %v), periods %d throttled %d for %v, quota %d/%d",
			s.Version, time.Duration(s.UsageNanos), time.Duration(s.UserNanos), time.Duration(s.SystemNanos),
			s.Periods, s.ThrottledPeriods, time.Duration(s.ThrottledNanos), s.QuotaMicros, s.PeriodMicros)
		// the split between user and system is tick-based: under an
		// emulated CPU (the v2 VM) a busy loop's ticks may land as
		// system time, so only their sum is checked
		if s.UserNanos+s.SystemNanos <= before.UserNanos+before.SystemNanos {
			t.Errorf("user+system time did not grow: %d+%d -> %d+%d", before.UserNanos, before.SystemNanos, s.UserNanos, s.SystemNanos)
		}
		if s.QuotaMicros != 10000 || s.PeriodMicros != 100000 {
			t.Errorf("quota %d/%d, want 10000/100000", s.QuotaMicros, s.PeriodMicros)
		}
		if s.ThrottledNanos == 0 || s.Periods < s.ThrottledPeriods {
			t.Errorf("throttled %d of %d periods for %dns", s.ThrottledPeriods, s.Periods, s.ThrottledNanos)
		}
	})
}

func TestRealOOMKill(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		c := create(t, rt, &specs.LinuxResources{Memory: memLimit(16 << 20)},
			"sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done")
		w, err := c.cg.WatchOOM(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		c.start(t)
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher stopped without an event: %v", w.Err())
			}
			if ev.Kills != 1 {
				t.Errorf("event says %d kills, want 1", ev.Kills)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("no OOM event within 60s")
		}
		ws := c.wait()
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("init ended with %v, want killed by SIGKILL", ws)
		}
		n, err := c.cg.OOMKills()
		if err != nil || n != 1 {
			t.Errorf("OOMKills %d, %v; want 1", n, err)
		}
	})
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestRealOOMWatcherLifecycle(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		c := create(t, rt, &specs.LinuxResources{Memory: memLimit(16 << 20)}, "sleep", "1000")
		c.start(t)
		fds, gs := openFDs(t), runtime.NumGoroutine()
		for i := 0; i < 50; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			w, err := c.cg.WatchOOM(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				cancel() // ends it through its context
				if _, ok := <-w.Events(); ok {
					t.Fatal("event after cancel, want the channel closed")
				}
				if err := w.Err(); err != nil {
					t.Fatalf("Err after cancel: %v, want nil", err)
				}
			}
			w.Close()
			w.Close()
			cancel()
		}
		testutil.Eventually(t, 5*time.Second, "fds and goroutines back to where they were", func() bool {
			return openFDs(t) == fds && runtime.NumGoroutine() <= gs
		})

		// the group goes away under a running watcher
		w, err := c.cg.WatchOOM(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		c.delete(t)
		select {
		case _, ok := <-w.Events():
			if ok {
				t.Fatal("an OOM event from a deleted container")
			}
			if !errors.Is(w.Err(), cgroups.ErrNotFound) {
				t.Errorf("Err after the group was removed: %v, want ErrNotFound", w.Err())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: watcher still running 10s after its group was removed", c.cg.Mode())
		}
	})
}

func TestRealLoadGone(t *testing.T) {
	testutil.RequireRoot(t)
	// a pid that is not running: pid_max is never a live pid
	if _, err := cgroups.Load(1 << 22); !errors.Is(err, cgroups.ErrNotFound) {
		t.Fatalf("Load of a missing pid: %v, want ErrNotFound", err)
	}
}
